#include "train/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

namespace tessera::train {

std::string format_duration(double seconds) {
  const auto s = static_cast<std::int64_t>(std::max(0.0, std::round(seconds)));
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) : fmt::format("{}:{:02}", s / 60, s % 60);
}

bool Progress::is_terminal(std::FILE* f) {
  const char* term = std::getenv("TERM");
  return ::isatty(::fileno(f)) && !(term && std::strcmp(term, "dumb") == 0);
}

Progress::Progress(std::FILE* out, bool live, std::int64_t log_interval)
    : out_(out), live_(live), log_interval_(std::max<std::int64_t>(log_interval, 1)) {}

void Progress::start_epoch(std::int64_t epoch, std::int64_t epochs, std::int64_t batches, std::int64_t first_batch) {
  epoch_ = epoch, epochs_ = epochs, batches_ = batches, first_ = first_batch;
  images_ = 0, loss_avg_ = 0, loss_count_ = 0;
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

void Progress::step(std::int64_t done, double loss, double lr, std::int64_t images) {
  images_ += images;
  // Loss shown: the mean since the last printed line (live: since the epoch started).
  loss_avg_ += (loss - loss_avg_) / static_cast<double>(++loss_count_);
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? images_ / elapsed : 0.0;
  const double steps_per_s = elapsed > 0 ? (done - first_) / elapsed : 0.0;
  const double eta = steps_per_s > 0 ? (batches_ - done) / steps_per_s : 0.0;
  if (live_) {
    if (done < batches_ && std::chrono::duration<double>(now - last_draw_).count() < 0.1) return;
    last_draw_ = now;
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(kWidth * done / std::max<std::int64_t>(batches_, 1));
    const std::string bar = std::string(filled, '=') + (filled < kWidth ? ">" : "") +
                            std::string(std::max(0, kWidth - filled - 1), ' ');
    fmt::print(out_, "\r\x1b[2Kepoch {}/{} [{}] {}/{} loss {:.4f} lr {:.2e} {:.0f} img/s ETA {}", epoch_ + 1,
               epochs_, bar, done, batches_, loss_avg_, lr, rate, format_duration(eta));
    dirty_ = true;
  } else if (done % log_interval_ == 0 || done == batches_) {
    fmt::print(out_, "epoch {}/{} step {}/{} loss {:.4f} lr {:.2e} {:.0f} img/s ETA {}\n", epoch_ + 1, epochs_, done,
               batches_, loss_avg_, lr, rate, format_duration(eta));
    loss_avg_ = 0, loss_count_ = 0;
  }
  std::fflush(out_);
}

void Progress::line(const std::string& text) {
  if (dirty_) fmt::print(out_, "\n");
  dirty_ = false;
  fmt::print(out_, "{}\n", text);
  std::fflush(out_);
}

}  // namespace tessera::train
