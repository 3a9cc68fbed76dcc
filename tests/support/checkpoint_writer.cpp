// Test helper: rewrites a checkpoint over and over until killed (training_faults tests
// SIGKILL it at random points of a write). Usage: checkpoint_writer CHECKPOINT
#include <cstdio>

#include "tessera/train/checkpoint.h"
#include "tessera/train/trainer.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  namespace tt = tessera::train;
  const tt::Checkpoint ck = tt::load_checkpoint(argv[1]);
  const tt::TrainConfig cfg = tt::load_config_string(ck.info.config_yaml);
  auto model = tt::build_model(cfg);
  model->load_state_dict(ck.model);
  for (tt::CheckpointInfo info = ck.info;; ++info.state.global_step) tt::save_checkpoint(argv[1], *model, ck.optimizer, info);
}
