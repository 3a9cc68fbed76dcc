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

}  // namespace tessera
