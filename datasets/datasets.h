// Everything in tessera::datasets: datasets, readers, transforms and the DataLoader.
#pragma once

#include "datasets/cifar.h"
#include "datasets/dataset.h"
#include "datasets/factory.h"
#include "datasets/idx.h"
#include "datasets/image_folder.h"
#include "datasets/loader.h"
#include "datasets/synthetic.h"
#include "datasets/transforms.h"
