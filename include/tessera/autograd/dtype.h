// Element types and devices, and the compile-time dispatch from a DType to a C++ type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string_view>

#include <fmt/format.h>

#include "tessera/autograd/error.h"

namespace tessera {

// f32 trains; f64 is the CPU reference for gradient checks; bf16 is for mixed precision;
// i64 holds class indices and gather/select indices.
enum class DType : std::uint8_t { f32, f64, bf16, i64 };

inline constexpr DType f32 = DType::f32;
inline constexpr DType f64 = DType::f64;
inline constexpr DType bf16 = DType::bf16;
inline constexpr DType i64 = DType::i64;

constexpr std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f64: return 8;
    case DType::bf16: return 2;
    case DType::i64: return 8;
  }
  return 0;
}

constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f64: return "f64";
    case DType::bf16: return "bf16";
    case DType::i64: return "i64";
  }
  return "?";
}

constexpr bool is_floating(DType t) { return t != DType::i64; }

enum class DeviceType : std::uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  static constexpr Device cpu() { return {DeviceType::cpu, 0}; }
  static constexpr Device cuda(int i = 0) { return {DeviceType::cuda, i}; }
  constexpr bool is_cpu() const { return type == DeviceType::cpu; }
  constexpr bool is_cuda() const { return type == DeviceType::cuda; }
  friend constexpr bool operator==(Device, Device) = default;
};

inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }
inline std::ostream& operator<<(std::ostream& os, Device d) {
  return d.is_cpu() ? os << "cpu" : os << "cuda:" << d.index;
}

template <class T> struct TypeTag { using type = T; };

// Calls fn(TypeTag<T>{}) for the floating dtypes that have CPU kernels (f32, f64).
template <class Fn>
decltype(auto) dispatch_float(DType t, std::string_view op, Fn&& fn) {
  switch (t) {
    case DType::f32: return fn(TypeTag<float>{});
    case DType::f64: return fn(TypeTag<double>{});
    default:
      throw DTypeError(fmt::format("{}: dtype {} is not supported (f32 or f64 expected)", op,
                                   dtype_name(t)));
  }
}

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }
template <> constexpr DType dtype_of<std::int64_t>() { return DType::i64; }

}  // namespace tessera

template <> struct fmt::formatter<tessera::DType> : fmt::formatter<std::string_view> {
  auto format(tessera::DType t, format_context& ctx) const {
    return fmt::formatter<std::string_view>::format(tessera::dtype_name(t), ctx);
  }
};

template <> struct fmt::formatter<tessera::Device> : fmt::formatter<std::string_view> {
  auto format(tessera::Device d, format_context& ctx) const {
    return d.is_cpu() ? fmt::format_to(ctx.out(), "cpu") : fmt::format_to(ctx.out(), "cuda:{}", d.index);
  }
};
