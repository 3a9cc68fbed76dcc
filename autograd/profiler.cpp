#include "tessera/autograd/profiler.h"

namespace tessera {
namespace {

struct State {
  bool on = false;
  std::map<std::string, OpTime> ops;
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
};

State& state() {
  static State s;
  return s;
}

}  // namespace

void Profiler::enable(bool on) {
  state().on = on;
  mark();
}
bool Profiler::enabled() { return state().on; }
void Profiler::reset() { state().ops.clear(); }
const std::map<std::string, OpTime>& Profiler::ops() { return state().ops; }
void Profiler::mark() { state().last = std::chrono::steady_clock::now(); }

void Profiler::on_record(const char* op) {
  State& s = state();
  const auto now = std::chrono::steady_clock::now();
  OpTime& t = s.ops[op];
  t.forward_s += std::chrono::duration<double>(now - s.last).count();
  ++t.calls;
  s.last = now;
}

void Profiler::on_backward(const char* op, double seconds) { state().ops[op].backward_s += seconds; }

namespace {
thread_local FlopCounter* t_counter = nullptr;
}  // namespace

FlopCounter::FlopCounter() : previous_(t_counter) { t_counter = this; }
FlopCounter::~FlopCounter() { t_counter = previous_; }

void count_flops(double flops) {
  if (t_counter) t_counter->flops_ += flops;
}

}  // namespace tessera
