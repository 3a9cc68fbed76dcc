// CIFAR-10 in its binary form: batches of 3073-byte records (one label byte, then a 32x32
// image stored channel by channel: 1024 red, 1024 green, 1024 blue bytes).
#pragma once

#include <filesystem>
#include <memory>
#include <vector>

#include "tessera/datasets/dataset.h"
#include "tessera/datasets/factory.h"

namespace tessera::datasets {

inline constexpr std::int64_t kCifarRecordBytes = 1 + 3 * 32 * 32;

// Reads the given batch files in order into one dataset. DataError naming the file when
// its size is not a positive multiple of 3073 bytes or a label is not below 10.
std::shared_ptr<InMemoryDataset> load_cifar10_files(const std::vector<std::filesystem::path>& files,
                                                    std::string name);

// The batch files of a split in `dir` or in `dir`/cifar-10-batches-bin: data_batch_1.bin ..
// data_batch_5.bin for train, test_batch.bin for test. IoError naming what is missing.
std::vector<std::filesystem::path> find_cifar10_files(const std::filesystem::path& dir, Split split);

std::shared_ptr<InMemoryDataset> load_cifar10(const std::filesystem::path& dir, Split split);

// Its registry entry (factory.h).
DatasetSpec cifar10_spec();

}  // namespace tessera::datasets
