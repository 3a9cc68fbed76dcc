// Tessera's umbrella header: everything a user needs to build and train models.
#pragma once

#include "tessera/autograd/gradcheck.h"
#include "tessera/autograd/tape.h"
#include "tessera/autograd/tensor.h"
#include "tessera/datasets/datasets.h"
#include "tessera/models/vit.h"
#include "tessera/nn/attention.h"
#include "tessera/nn/init.h"
#include "tessera/nn/layers.h"
#include "tessera/nn/module.h"
#include "tessera/nn/transformer.h"
#include "tessera/ops/ops.h"
#include "tessera/optim/optim.h"
