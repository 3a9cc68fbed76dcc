// Learning-rate schedules as pure functions of the global step (the number of optimizer
// steps taken before this one): the trainer calls opt.set_lr(schedule.lr_at(step)) each step,
// so resuming at step s needs nothing but s.
#pragma once

#include <cstdint>
#include <string_view>

namespace tessera::optim {

struct LrSchedule {
  enum class Kind { constant, step, cosine };

  Kind kind = Kind::constant;
  double base_lr = 1e-3;
  // Linear warm-up (any kind): lr goes from warmup_start_lr at step 0 to base_lr at step
  // warmup_steps, where the schedule proper begins.
  std::int64_t warmup_steps = 0;
  double warmup_start_lr = 0.0;
  // step: lr = base_lr * gamma^floor(step / step_size) after warm-up. For "every k epochs",
  // pass step_size = k * steps_per_epoch.
  std::int64_t step_size = 0;
  double gamma = 0.1;
  // cosine: from base_lr at warmup_steps down to min_lr at total_steps, min_lr after.
  std::int64_t total_steps = 0;
  double min_lr = 0.0;

  // Throws ConfigError naming the first bad field.
  void validate() const;
  // The lr for the optimizer step that follows `step` earlier steps (step >= 0).
  double lr_at(std::int64_t step) const;
};

// "constant", "step", "cosine" (for configs); throws ConfigError listing the valid names.
LrSchedule::Kind schedule_kind_from_string(std::string_view name);
std::string_view to_string(LrSchedule::Kind kind);

}  // namespace tessera::optim
