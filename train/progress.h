// Progress reporting for training: a live bar on a terminal (epoch, step/total, loss, lr,
// images/s, ETA), plain periodic lines otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace tessera::train {

class Progress {
 public:
  // live: redraw one line in place (a terminal); otherwise print a line every log_interval steps.
  // log (optional, e.g. the run directory's train.log) gets the plain lines either way.
  Progress(std::FILE* out, bool live, std::int64_t log_interval, std::FILE* log = nullptr);

  void start_epoch(std::int64_t epoch, std::int64_t epochs, std::int64_t batches, std::int64_t first_batch);
  // After each step: the batch just done (1-based count), its loss, the lr and batch size.
  void step(std::int64_t done, double loss, double lr, std::int64_t images);
  // A finished line (epoch summary, evaluation, warnings): ends any live line first.
  void line(const std::string& text);

  // Whether stdout-like output should get the live bar: a terminal, and not TERM=dumb.
  static bool is_terminal(std::FILE* f);

 private:
  static void write(std::FILE* f, const std::string& text);

  std::FILE* out_;
  std::FILE* log_;
  bool live_;
  std::int64_t log_interval_;
  std::int64_t epoch_ = 0, epochs_ = 0, batches_ = 0, first_ = 0;
  std::int64_t images_ = 0;
  double loss_avg_ = 0;
  std::int64_t loss_count_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool dirty_ = false;
};

std::string format_duration(double seconds);  // "1:02:03" or "2:03"

}  // namespace tessera::train
