// DataLoader: shuffles, augments and batches a Dataset, preparing the next batches on
// background threads.
//
// Every batch is a pure function of (seed, epoch, batch index): the epoch's order is a
// Philox-driven shuffle keyed by (seed, epoch), and each sample's augmentation draws from
// a stream keyed by (seed, epoch, dataset index, transform position). So the sequence is
// the same with or without prefetching, with any number of workers and any thread timing,
// and a resumed run can start at any epoch and batch and see exactly what it would have.
//
//   DataLoader loader(dataset, {.batch_size = 128, .seed = 1,
//                               .transforms = {transforms::random_crop({.padding = 4}),
//                                              transforms::normalize(stats)}});
//   loader.set_epoch(start_epoch, start_batch);       // only when resuming
//   for (int e = start_epoch; e < epochs; ++e)
//     for (auto [x, y] : loader) { ... }              // x: (B,C,H,W) f32, y: (B) i64
#pragma once

#include <cstdint>
#include <iterator>
#include <memory>
#include <tuple>
#include <vector>

#include "tessera/autograd/tensor.h"
#include "tessera/datasets/dataset.h"
#include "tessera/datasets/transforms.h"

namespace tessera::datasets {

struct LoaderOptions {
  std::int64_t batch_size = 64;
  bool shuffle = true;
  bool drop_last = false;  // drop the last batch when it would be smaller than batch_size
  std::uint64_t seed = 0;
  // Applied in order to each image after it is scaled to [0, 1].
  std::vector<TransformPtr> transforms = {};
  // Batches prepared ahead of the consumer; 0 prepares each batch on the caller's thread.
  std::int64_t prefetch = 2;
  // Background threads preparing batches (used when prefetch > 0).
  std::int64_t workers = 1;
  // Data-parallel training: this loader yields only shard `shard_index` of `shard_count` of
  // every batch (contiguous rows; the first batch_size % shard_count shards one row larger).
  // The epoch's order, the batches and the augmentation draws are those of one process.
  std::int64_t shard_index = 0;
  std::int64_t shard_count = 1;
};

struct Batch {
  Tensor images;  // (B, C, H, W) f32
  Tensor labels;  // (B) i64
  std::int64_t epoch = 0;
  std::int64_t index = 0;             // batch index within the epoch
  std::vector<std::int64_t> samples;  // dataset indices, in batch order
  // The whole batch across shards, and where this shard's rows start in it (see
  // LoaderOptions::shard_count); without sharding, global_size == size() and offset 0.
  std::int64_t global_size = 0;
  std::int64_t shard_offset = 0;

  std::int64_t size() const { return static_cast<std::int64_t>(samples.size()); }
  // `auto [x, y] = batch` binds images and labels.
  template <std::size_t I> Tensor get() const {
    static_assert(I < 2, "a Batch binds to [images, labels]");
    if constexpr (I == 0) return images; else return labels;
  }
};

// Rows [offset, offset + size) of `rows` that shard `index` of `count` takes: contiguous,
// the first rows % count shards one row larger.
struct Shard {
  std::int64_t offset = 0;
  std::int64_t size = 0;
};
Shard shard_of(std::int64_t rows, std::int64_t index, std::int64_t count);

namespace detail {
struct LoaderPlan;
class EpochRun;
}  // namespace detail

class DataLoader {
 public:
  // ConfigError for bad options (batch size, prefetch, transforms that do not fit the
  // dataset's image shape); DataError for an empty dataset.
  DataLoader(DatasetPtr dataset, LoaderOptions options = {});

  const Dataset& dataset() const;
  const LoaderOptions& options() const;
  std::int64_t num_batches() const;  // per epoch
  ImageShape image_shape() const;    // of the batch images, after the transforms

  // Positions the loader: the next iteration runs `epoch` from batch `start_batch`
  // (0 <= start_batch <= num_batches()). Each iteration started by begin() then moves the
  // position on to the start of the following epoch, so a plain loop over the loader
  // reshuffles every pass; resuming needs one call to set_epoch.
  void set_epoch(std::int64_t epoch, std::int64_t start_batch = 0);
  std::int64_t epoch() const { return epoch_; }
  std::int64_t start_batch() const { return start_batch_; }

  // Random access, independent of the iteration position, safe from any thread.
  std::vector<std::int64_t> epoch_order(std::int64_t epoch) const;  // dataset indices
  Batch batch(std::int64_t epoch, std::int64_t index) const;

  class Sentinel {};
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Batch;
    using difference_type = std::ptrdiff_t;
    using pointer = const Batch*;
    using reference = const Batch&;

    Iterator() = default;
    const Batch& operator*() const { return current_; }
    const Batch* operator->() const { return &current_; }
    // Waits for the next batch; rethrows here an exception raised while preparing it.
    Iterator& operator++();
    void operator++(int) { ++*this; }
    friend bool operator==(const Iterator& it, Sentinel) { return it.done_; }

   private:
    friend class DataLoader;
    explicit Iterator(std::shared_ptr<detail::EpochRun> run);
    std::shared_ptr<detail::EpochRun> run_;  // owns the workers; they stop when it goes
    Batch current_;
    bool done_ = true;
  };

  Iterator begin();
  Sentinel end() const { return {}; }

 private:
  std::shared_ptr<const detail::LoaderPlan> plan_;
  std::int64_t epoch_ = 0;
  std::int64_t start_batch_ = 0;
};

}  // namespace tessera::datasets

template <> struct std::tuple_size<tessera::datasets::Batch> : std::integral_constant<std::size_t, 2> {};
template <std::size_t I> struct std::tuple_element<I, tessera::datasets::Batch> {
  using type = tessera::Tensor;
};
