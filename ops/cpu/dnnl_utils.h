// oneDNN plumbing: one CPU engine, a stream per thread, memory descriptors for our
// row-major tensors, and a per-thread cache so each primitive is created once per shape.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <initializer_list>
#include <unordered_map>
#include <utility>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "tessera/autograd/tensor.h"

namespace tessera::cpu {

dnnl::engine& dnnl_engine();
dnnl::stream& dnnl_stream();

dnnl::memory::data_type dnnl_dtype(DType t);
// Row-major descriptor for `shape` (a rank-0 tensor becomes (1)).
dnnl::memory::desc plain_md(const Shape& shape, DType t);
dnnl::memory::desc strided_md(const dnnl::memory::dims& dims, const dnnl::memory::dims& strides,
                              DType t);
dnnl::memory wrap(const dnnl::memory::desc& md, const void* ptr);

// Runs a primitive on this thread's stream and waits.
void execute(const dnnl::primitive& p, const std::unordered_map<int, dnnl::memory>& args);

// Cache key: a primitive kind tag plus the integers that fully determine it.
struct PrimitiveKey {
  std::vector<std::int64_t> values;
  PrimitiveKey(std::initializer_list<std::int64_t> init) : values(init) {}
  PrimitiveKey& add(std::int64_t v) { values.push_back(v); return *this; }
  PrimitiveKey& add(const std::vector<std::int64_t>& vs) {
    values.push_back(static_cast<std::int64_t>(vs.size()));
    values.insert(values.end(), vs.begin(), vs.end());
    return *this;
  }
  friend bool operator==(const PrimitiveKey&, const PrimitiveKey&) = default;
};

struct PrimitiveKeyHash {
  std::size_t operator()(const PrimitiveKey& k) const noexcept {
    std::size_t h = 0xcbf29ce484222325ull;
    for (std::int64_t v : k.values) h = (h ^ static_cast<std::size_t>(v)) * 0x100000001b3ull;
    return h;
  }
};

// Returns this thread's cached Entry for `key`, creating it with make() on first use.
// Entry usually holds a primitive_desc and its primitive.
template <class Entry, class Make>
const Entry& cached_primitive(const PrimitiveKey& key, Make&& make) {
  thread_local std::unordered_map<PrimitiveKey, Entry, PrimitiveKeyHash> cache;
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, make()).first;
  return it->second;
}

// oneDNN's failure, in the user's terms: which op, its operands' shapes and dtypes, and what
// this CPU (under any ISA cap) lacks. Never oneDNN's own wording alone.
[[noreturn]] void throw_dnnl_error(const char* op, std::initializer_list<const Tensor*> operands,
                                   const dnnl::error& e);

// Runs fn, turning oneDNN's exceptions into tessera::Error (see throw_dnnl_error).
template <class Fn>
decltype(auto) dnnl_call(const char* op, std::initializer_list<const Tensor*> operands, Fn&& fn) {
  try {
    return fn();
  } catch (const dnnl::error& e) {
    throw_dnnl_error(op, operands, e);
  }
}
template <class Fn>
decltype(auto) dnnl_call(const char* op, Fn&& fn) {
  return dnnl_call(op, {}, std::forward<Fn>(fn));
}

// Whether oneDNN picked an optimised implementation rather than its reference one (which
// for some broadcasts and axes is far slower than our own loops).
inline bool is_optimized(const dnnl::primitive_desc_base& pd) {
  return std::string_view(pd.impl_info_str()).substr(0, 3) != "ref";
}

inline dnnl::memory::dims to_dims(const Shape& s) { return dnnl::memory::dims(s.begin(), s.end()); }

}  // namespace tessera::cpu
