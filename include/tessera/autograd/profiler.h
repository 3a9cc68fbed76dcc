// A per-op time profile of forward and backward passes (for `tessera bench --profile`).
// Backward time is measured around each node's closure; forward time is the time since the
// previous op was recorded, which attributes to each op its kernel plus the glue before it.
#pragma once

#include <chrono>
#include <map>
#include <string>

namespace tessera {

struct OpTime {
  double forward_s = 0, backward_s = 0;
  std::int64_t calls = 0;
};

class Profiler {
 public:
  static void enable(bool on);
  static bool enabled();
  static void reset();
  static const std::map<std::string, OpTime>& ops();
  // Called by the tape.
  static void on_record(const char* op);
  static void on_backward(const char* op, double seconds);
  static void mark();  // restart the forward clock (start of a pass)
};

// The multiply-add work of the passes run while it is alive on this thread: 2mnk per matrix
// product (matmul, linear, convolution, attention's two products), what a roofline counts.
// Ops report theirs with count_flops; a backward pass's products count as they run.
class FlopCounter {
 public:
  FlopCounter();
  ~FlopCounter();
  FlopCounter(const FlopCounter&) = delete;
  FlopCounter& operator=(const FlopCounter&) = delete;
  double flops() const { return flops_; }

 private:
  friend void count_flops(double flops);
  double flops_ = 0;
  FlopCounter* previous_;
};
void count_flops(double flops);

}  // namespace tessera
