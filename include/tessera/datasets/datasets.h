// Everything in tessera::datasets: datasets, readers, transforms and the DataLoader.
#pragma once

#include "tessera/datasets/cifar.h"
#include "tessera/datasets/dataset.h"
#include "tessera/datasets/factory.h"
#include "tessera/datasets/idx.h"
#include "tessera/datasets/image_folder.h"
#include "tessera/datasets/loader.h"
#include "tessera/datasets/synthetic.h"
#include "tessera/datasets/transforms.h"
