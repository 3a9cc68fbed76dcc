#include "tessera/autograd/allocator.h"

#include <bit>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <new>
#include <string>

#include <unistd.h>

namespace tessera {
namespace {

constexpr std::size_t kAlignment = 64;  // a cache line, and AVX-512's natural alignment
constexpr std::size_t kDefaultCacheLimit = std::size_t{4} << 30;

void* aligned_raw_alloc(std::size_t bytes) { return std::aligned_alloc(kAlignment, bytes); }
void aligned_raw_free(void* p) { std::free(p); }

bool g_device_backends[2] = {true, false};  // the CPU's is always there
Allocator* g_device_allocators[2] = {nullptr, nullptr};
DeviceCopyFn g_device_copy[2] = {nullptr, nullptr};

}  // namespace

CachingAllocator::CachingAllocator(RawAlloc raw_alloc, RawFree raw_free, const char* name)
    : raw_alloc_(raw_alloc), raw_free_(raw_free), name_(name), cache_limit_(kDefaultCacheLimit) {}

CachingAllocator::~CachingAllocator() {
  std::lock_guard lock(mutex_);
  release_all_locked();
}

std::size_t CachingAllocator::size_class(std::size_t bytes) {
  if (bytes <= 4096) return (bytes + 63) / 64 * 64;
  const std::size_t step = std::bit_floor(bytes - 1) / 8;
  return (bytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  const std::size_t cls = size_class(bytes);
  {
    std::lock_guard lock(mutex_);
    const auto over_limit = [&](std::size_t held) { return cls > memory_limit_ || held > memory_limit_ - cls; };
    // Cached blocks count against the limit too (the system holds them for us): they go first.
    if (memory_limit_ > 0 && over_limit(stats_.in_use + stats_.cached)) release_all_locked();
    if (memory_limit_ > 0 && over_limit(stats_.in_use))
      throw DeviceError(fmt::format("{}: out of memory: {} more would make {} in use, above the {} available",
                                    name_, format_bytes(cls), format_bytes(stats_.in_use + cls),
                                    format_bytes(memory_limit_)));
    stats_.in_use += cls;
    if (stats_.in_use > stats_.peak_in_use) stats_.peak_in_use = stats_.in_use;
    auto it = free_lists_.find(cls);
    if (it != free_lists_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      stats_.cached -= cls;
      return p;
    }
    ++stats_.raw_allocations;
  }
  void* p = raw_alloc_(cls);
  if (p == nullptr) {  // fragmentation: give the cache back and try once more
    std::lock_guard lock(mutex_);
    release_all_locked();
    p = raw_alloc_(cls);
  }
  if (p == nullptr) {
    std::lock_guard lock(mutex_);
    stats_.in_use -= cls;
    throw DeviceError(fmt::format("{}: out of memory: the system refused {} ({} in use)", name_,
                                  format_bytes(cls), format_bytes(stats_.in_use)));
  }
  return p;
}

void CachingAllocator::deallocate(void* ptr, std::size_t bytes) {
  if (ptr == nullptr) return;
  const std::size_t cls = size_class(bytes);
  std::lock_guard lock(mutex_);
  stats_.in_use -= cls;
  if (stats_.cached + cls > cache_limit_) {
    raw_free_(ptr);
    return;
  }
  free_lists_[cls].push_back(ptr);
  stats_.cached += cls;
}

void CachingAllocator::release_all_locked() {
  for (auto& [cls, list] : free_lists_)
    for (void* p : list) raw_free_(p);
  free_lists_.clear();
  stats_.cached = 0;
}

void CachingAllocator::empty_cache() {
  std::lock_guard lock(mutex_);
  release_all_locked();
}

void CachingAllocator::set_cache_limit(std::size_t bytes) {
  std::lock_guard lock(mutex_);
  cache_limit_ = bytes;
  if (stats_.cached > cache_limit_) release_all_locked();
}

void CachingAllocator::set_memory_limit(std::size_t bytes) {
  std::lock_guard lock(mutex_);
  memory_limit_ = bytes;
}

std::size_t CachingAllocator::memory_limit() const {
  std::lock_guard lock(mutex_);
  return memory_limit_;
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard lock(mutex_);
  stats_.peak_in_use = stats_.in_use;
}

CachingAllocator& cpu_allocator() {
  // Leaked on purpose: tensors in static objects may be destroyed after any static allocator.
  static auto* alloc = [] {
    auto* a = new CachingAllocator(aligned_raw_alloc, aligned_raw_free, "cpu");
    a->set_memory_limit(available_system_memory());
    return a;
  }();
  return *alloc;
}

std::string format_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes) / 1024;
  std::size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(units)) v /= 1024, ++u;
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::size_t available_system_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  std::size_t kib = 0;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  const long pages = ::sysconf(_SC_AVPHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) : 0;
}

void register_device_backend(DeviceType type) { g_device_backends[static_cast<int>(type)] = true; }
bool cuda_built() { return g_device_backends[static_cast<int>(DeviceType::cuda)]; }
bool cuda_available() { return g_device_allocators[static_cast<int>(DeviceType::cuda)] != nullptr; }

void register_device_allocator(DeviceType type, Allocator* allocator) {
  g_device_allocators[static_cast<int>(type)] = allocator;
}

Allocator& allocator_for(Device device) {
  if (device.is_cpu()) return cpu_allocator();
  Allocator* a = g_device_allocators[static_cast<int>(device.type)];
  TESSERA_CHECK(a != nullptr, DeviceError,
                "allocator: no allocator for device {} (built without CUDA, or no GPU present)",
                device);
  return *a;
}

void register_device_copy(DeviceType type, DeviceCopyFn fn) {
  g_device_copy[static_cast<int>(type)] = fn;
}

void device_copy(void* dst, Device dst_device, const void* src, Device src_device,
                 std::size_t bytes) {
  if (bytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return;
  }
  const Device gpu = dst_device.is_cpu() ? src_device : dst_device;
  DeviceCopyFn fn = g_device_copy[static_cast<int>(gpu.type)];
  TESSERA_CHECK(fn != nullptr, DeviceError,
                "device_copy: no backend for device {} (built without CUDA, or no GPU present)", gpu);
  fn(dst, dst_device, src, src_device, bytes);
}

}  // namespace tessera
