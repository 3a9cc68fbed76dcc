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

Progress::Progress(std::FILE* out, bool live, std::int64_t log_interval, std::FILE* log)
    : out_(out), log_(log), live_(live), log_interval_(std::max<std::int64_t>(log_interval, 1)) {}

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
  const bool periodic = done % log_interval_ == 0 || done == batches_;
  if (live_ && (done == batches_ || std::chrono::duration<double>(now - last_draw_).count() >= 0.1)) {
    last_draw_ = now;
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(kWidth * done / std::max<std::int64_t>(batches_, 1));
    const std::string bar = std::string(filled, '=') + (filled < kWidth ? ">" : "") +
                            std::string(std::max(0, kWidth - filled - 1), ' ');
    fmt::print(out_, "\r\x1b[2Kepoch {}/{} [{}] {}/{} loss {:.4f} lr {:.2e} {:.0f} img/s ETA {}", epoch_ + 1,
               epochs_, bar, done, batches_, loss_avg_, lr, rate, format_duration(eta));
    std::fflush(out_);
    dirty_ = true;
  }
  if (periodic) {
    const std::string text = fmt::format("epoch {}/{} step {}/{} loss {:.4f} lr {:.2e} {:.0f} img/s ETA {}\n",
                                         epoch_ + 1, epochs_, done, batches_, loss_avg_, lr, rate, format_duration(eta));
    if (!live_) write(out_, text);
    if (log_) write(log_, text);
    if (!live_) loss_avg_ = 0, loss_count_ = 0;
  }
}

void Progress::line(const std::string& text) {
  if (dirty_) write(out_, "\n");
  dirty_ = false;
  write(out_, text + "\n");
  if (log_) write(log_, text + "\n");
}

void Progress::write(std::FILE* f, const std::string& text) {
  // A closed terminal or a full disk must not stop training: the text is simply lost there.
  std::fwrite(text.data(), 1, text.size(), f);
  std::fflush(f);
}

}  // namespace tessera::train
