// Tessera's umbrella header: everything a user needs to build and train models.
#pragma once

#include "autograd/gradcheck.h"
#include "autograd/tape.h"
#include "autograd/tensor.h"
#include "datasets/datasets.h"
#include "models/vit.h"
#include "nn/attention.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/module.h"
#include "nn/transformer.h"
#include "ops/ops.h"
#include "optim/optim.h"
