// A function of the nn layer calling up into train: the build must refuse to link it
// (tests/CMakeLists.txt builds it against tessera_nn alone with -Wl,--no-undefined and
// expects the undefined reference). Never part of the library.
#include "tessera/nn/module.h"
#include "tessera/train/config.h"

namespace tessera::nn {

std::string upward_call() { return train::dump_config(train::TrainConfig{}); }

}  // namespace tessera::nn
