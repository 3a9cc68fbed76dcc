#include "tessera/datasets/loader.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include <fmt/format.h>

#include "tessera/autograd/random.h"

namespace tessera::datasets {

Shard shard_of(std::int64_t rows, std::int64_t index, std::int64_t count) {
  TESSERA_CHECK(count >= 1 && index >= 0 && index < count && rows >= 0, Error,
                "shard_of: shard {} of {} over {} rows", index, count, rows);
  const std::int64_t base = rows / count, extra = rows % count;
  return {index * base + std::min(index, extra), base + (index < extra ? 1 : 0)};
}

namespace detail {

// Everything a batch depends on besides (epoch, index); immutable once built and shared
// by the loader and its running epochs.
struct LoaderPlan {
  DatasetPtr dataset;
  LoaderOptions options;
  std::vector<ImageShape> stage_shapes;  // [0]: the dataset's; [k + 1]: after transform k
  std::int64_t max_stage_numel = 0;
  std::int64_t num_batches = 0;

  // The most recent epoch's order, so random access by batch does not reshuffle each time.
  mutable std::mutex cache_mutex;
  mutable std::int64_t cached_epoch = -1;
  mutable std::shared_ptr<const std::vector<std::int64_t>> cached_order;

  std::shared_ptr<const std::vector<std::int64_t>> order(std::int64_t epoch) const;
  Batch build(std::int64_t epoch, std::int64_t index, const std::vector<std::int64_t>& order) const;
  void check_epoch(std::int64_t epoch, const char* where) const {
    TESSERA_CHECK(epoch >= 0 && epoch < (std::int64_t{1} << 56), Error,
                  "DataLoader::{}: epoch {} is out of range [0, 2^56)", where, epoch);
  }
};

std::shared_ptr<const std::vector<std::int64_t>> LoaderPlan::order(std::int64_t epoch) const {
  {
    std::lock_guard lock(cache_mutex);
    if (cached_epoch == epoch) return cached_order;
  }
  const std::int64_t n = dataset->size();
  auto order = std::make_shared<std::vector<std::int64_t>>(static_cast<std::size_t>(n));
  std::iota(order->begin(), order->end(), std::int64_t{0});
  if (options.shuffle) {
    // Fisher-Yates; draw i comes from counter (i, epoch) alone. Lemire's multiply-high maps
    // 64 random bits onto [0, i]: the bias, at most (i + 1) / 2^64, is far below anything
    // a training run could notice.
    const std::uint64_t hi = (static_cast<std::uint64_t>(RngDomain::shuffle) << 56) |
                             static_cast<std::uint64_t>(epoch);
    for (std::int64_t i = n - 1; i > 0; --i) {
      const auto r = philox4x32(options.seed, static_cast<std::uint64_t>(i), hi);
      const std::uint64_t x = (std::uint64_t{r[0]} << 32) | r[1];
      const auto j = static_cast<std::int64_t>(
          (static_cast<unsigned __int128>(x) * static_cast<std::uint64_t>(i + 1)) >> 64);
      std::swap((*order)[i], (*order)[j]);
    }
  }
  std::lock_guard lock(cache_mutex);
  cached_epoch = epoch;
  cached_order = order;
  return order;
}

Batch LoaderPlan::build(std::int64_t epoch, std::int64_t index,
                        const std::vector<std::int64_t>& order) const {
  const std::int64_t bs = options.batch_size;
  const std::int64_t global = std::min(bs, static_cast<std::int64_t>(order.size()) - index * bs);
  const Shard shard = shard_of(global, options.shard_index, options.shard_count);
  const std::int64_t first = index * bs + shard.offset, count = shard.size;
  const ImageShape in = stage_shapes.front(), out = stage_shapes.back();

  Batch batch;
  batch.epoch = epoch;
  batch.index = index;
  batch.global_size = global;
  batch.shard_offset = shard.offset;
  batch.samples.assign(order.begin() + first, order.begin() + first + count);
  batch.images = empty({count, out.channels, out.height, out.width});  // (B, C, H, W)
  batch.labels = empty({count}, {.dtype = DType::i64});                // (B)
  float* images = batch.images.data<float>();
  std::int64_t* labels = batch.labels.data<std::int64_t>();

  std::vector<std::uint8_t> raw(static_cast<std::size_t>(in.numel()));
  std::vector<float> a(static_cast<std::size_t>(max_stage_numel));
  std::vector<float> b(a.size());
  for (std::int64_t j = 0; j < count; ++j) {
    const std::int64_t s = batch.samples[j];
    dataset->read_image(s, raw);
    labels[j] = dataset->label(s);
    for (std::size_t p = 0; p < raw.size(); ++p) a[p] = static_cast<float>(raw[p]) / 255.0f;
    for (std::size_t k = 0; k < options.transforms.size(); ++k) {
      SampleRng rng(options.seed, RngDomain::augment, static_cast<std::uint64_t>(epoch),
                    static_cast<std::uint64_t>(s), static_cast<std::uint32_t>(k));
      const ImageShape& from = stage_shapes[k];
      const ImageShape& to = stage_shapes[k + 1];
      options.transforms[k]->apply(std::span<const float>(a.data(), from.numel()), from,
                                   std::span<float>(b.data(), to.numel()), rng);
      std::swap(a, b);
    }
    std::memcpy(images + j * out.numel(), a.data(), static_cast<std::size_t>(out.numel()) * sizeof(float));
  }
  return batch;
}

// One pass over batches [begin, end) of an epoch. With prefetch, `workers` threads build
// batch k on worker (k - begin) % workers, never running more than `prefetch` batches
// ahead of the consumer; the consumer takes them strictly in order, so timing cannot
// change what it sees.
class EpochRun {
 public:
  EpochRun(std::shared_ptr<const LoaderPlan> plan, std::int64_t epoch, std::int64_t begin)
      : plan_(std::move(plan)), epoch_(epoch), next_(begin), end_(plan_->num_batches),
        consumed_(begin) {
    order_ = plan_->order(epoch);
    const LoaderOptions& o = plan_->options;
    if (o.prefetch == 0) return;
    const std::int64_t workers = std::min(o.workers, std::max<std::int64_t>(end_ - begin, 0));
    try {
      for (std::int64_t w = 0; w < workers; ++w)
        threads_.emplace_back([this, w, begin, workers] { work(begin + w, workers); });
    } catch (...) {
      shut_down();
      throw;
    }
  }

  ~EpochRun() { shut_down(); }

  bool has_next() const { return next_ < end_; }

  Batch next() {
    const std::int64_t k = next_++;
    if (threads_.empty()) return plan_->build(epoch_, k, *order_);
    std::unique_lock lock(mutex_);
    ready_cv_.wait(lock, [&] { return ready_.count(k) != 0; });
    Slot slot = std::move(ready_.at(k));
    ready_.erase(k);
    consumed_ = k + 1;
    lock.unlock();
    space_.notify_all();
    if (slot.error) {
      next_ = end_;  // the pass is over: its workers stopped at the failure
      std::rethrow_exception(slot.error);
    }
    return std::move(slot.batch);
  }

 private:
  struct Slot {
    Batch batch;
    std::exception_ptr error;
  };

  void shut_down() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    space_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  void work(std::int64_t first, std::int64_t stride) {
    const std::int64_t ahead = plan_->options.prefetch;
    for (std::int64_t k = first; k < end_; k += stride) {
      {
        std::unique_lock lock(mutex_);
        space_.wait(lock, [&] { return stop_ || k < consumed_ + ahead; });
        if (stop_) return;
      }
      Slot slot;
      try {
        slot.batch = plan_->build(epoch_, k, *order_);
      } catch (...) {
        slot.error = std::current_exception();
      }
      const bool failed = slot.error != nullptr;
      {
        std::lock_guard lock(mutex_);
        ready_.emplace(k, std::move(slot));
      }
      ready_cv_.notify_all();
      if (failed) return;
    }
  }

  std::shared_ptr<const LoaderPlan> plan_;
  std::shared_ptr<const std::vector<std::int64_t>> order_;
  const std::int64_t epoch_;
  std::int64_t next_;       // consumer side only
  const std::int64_t end_;

  std::mutex mutex_;
  std::condition_variable ready_cv_, space_;
  std::map<std::int64_t, Slot> ready_;
  std::int64_t consumed_;  // batches below this index have been taken
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace detail

DataLoader::DataLoader(DatasetPtr dataset, LoaderOptions options) {
  TESSERA_CHECK(dataset != nullptr, ConfigError, "DataLoader: no dataset given");
  TESSERA_CHECK(options.batch_size > 0, ConfigError, "DataLoader: batch_size {} must be positive",
                options.batch_size);
  TESSERA_CHECK(options.prefetch >= 0, ConfigError, "DataLoader: prefetch {} must not be negative",
                options.prefetch);
  TESSERA_CHECK(options.workers >= 1, ConfigError, "DataLoader: workers {} must be at least 1",
                options.workers);
  TESSERA_CHECK(options.shard_count >= 1 && options.shard_index >= 0 && options.shard_index < options.shard_count,
                ConfigError, "DataLoader: shard {} of {} does not exist", options.shard_index, options.shard_count);
  TESSERA_CHECK(options.transforms.size() < 256, ConfigError,
                "DataLoader: {} transforms; at most 255 are supported", options.transforms.size());
  const std::int64_t n = dataset->size();
  TESSERA_CHECK(n > 0, DataError, "DataLoader: dataset {} is empty", dataset->name());
  TESSERA_CHECK(n < (std::int64_t{1} << 40), DataError,
                "DataLoader: dataset {} has {} samples; at most 2^40 are supported", dataset->name(), n);

  auto plan = std::make_shared<detail::LoaderPlan>();
  plan->stage_shapes.push_back(dataset->image_shape());
  for (const auto& t : options.transforms) {
    TESSERA_CHECK(t != nullptr, ConfigError, "DataLoader: transform {} is null",
                  plan->stage_shapes.size() - 1);
    plan->stage_shapes.push_back(t->output_shape(plan->stage_shapes.back()));
  }
  for (const auto& s : plan->stage_shapes) plan->max_stage_numel = std::max(plan->max_stage_numel, s.numel());
  plan->num_batches = options.drop_last ? n / options.batch_size
                                        : (n + options.batch_size - 1) / options.batch_size;
  plan->dataset = std::move(dataset);
  plan->options = std::move(options);
  plan_ = std::move(plan);
}

const Dataset& DataLoader::dataset() const { return *plan_->dataset; }
const LoaderOptions& DataLoader::options() const { return plan_->options; }
std::int64_t DataLoader::num_batches() const { return plan_->num_batches; }
ImageShape DataLoader::image_shape() const { return plan_->stage_shapes.back(); }

void DataLoader::set_epoch(std::int64_t epoch, std::int64_t start_batch) {
  plan_->check_epoch(epoch, "set_epoch");
  TESSERA_CHECK(start_batch >= 0 && start_batch <= plan_->num_batches, Error,
                "DataLoader::set_epoch: start batch {} is out of range [0, {}]", start_batch,
                plan_->num_batches);
  epoch_ = epoch;
  start_batch_ = start_batch;
}

std::vector<std::int64_t> DataLoader::epoch_order(std::int64_t epoch) const {
  plan_->check_epoch(epoch, "epoch_order");
  return *plan_->order(epoch);
}

Batch DataLoader::batch(std::int64_t epoch, std::int64_t index) const {
  plan_->check_epoch(epoch, "batch");
  TESSERA_CHECK(index >= 0 && index < plan_->num_batches, Error,
                "DataLoader::batch: index {} is out of range [0, {})", index, plan_->num_batches);
  return plan_->build(epoch, index, *plan_->order(epoch));
}

DataLoader::Iterator DataLoader::begin() {
  plan_->check_epoch(epoch_ + 1, "begin");
  auto run = std::make_shared<detail::EpochRun>(plan_, epoch_, start_batch_);
  ++epoch_;
  start_batch_ = 0;
  return Iterator(std::move(run));
}

DataLoader::Iterator::Iterator(std::shared_ptr<detail::EpochRun> run) : run_(std::move(run)) {
  ++*this;
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  if (!run_ || !run_->has_next()) {
    done_ = true;
    current_ = Batch{};
    run_.reset();  // stops and joins the workers now, not when the iterator goes
    return *this;
  }
  done_ = false;
  current_ = run_->next();
  return *this;
}

}  // namespace tessera::datasets
