// Everything in optim/: optimizers, parameter groups, LR schedules, gradient clipping.
#pragma once

#include "tessera/optim/adam.h"
#include "tessera/optim/clip.h"
#include "tessera/optim/optimizer.h"
#include "tessera/optim/schedule.h"
#include "tessera/optim/sgd.h"
