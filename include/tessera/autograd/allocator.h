// Device memory: a caching allocator that keeps freed blocks in size classes for reuse,
// so steady-state training does no malloc/free per op.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "tessera/autograd/dtype.h"

namespace tessera {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* ptr, std::size_t bytes) = 0;
};

struct AllocatorStats {
  std::size_t in_use = 0;       // bytes handed out and not yet returned
  std::size_t peak_in_use = 0;
  std::size_t cached = 0;       // bytes held in free lists
  std::size_t raw_allocations = 0;  // calls to the underlying allocator
};

// Wraps a raw allocate/free pair (aligned malloc, cudaMalloc) with size-class free lists.
class CachingAllocator final : public Allocator {
 public:
  using RawAlloc = void* (*)(std::size_t);
  using RawFree = void (*)(void*);

  CachingAllocator(RawAlloc raw_alloc, RawFree raw_free, const char* name);
  ~CachingAllocator() override;

  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr, std::size_t bytes) override;

  // Returns every cached block to the underlying allocator.
  void empty_cache();
  // Cached bytes above this limit are released instead of kept.
  void set_cache_limit(std::size_t bytes);
  // Requests that would take the bytes in use above this limit are refused with a
  // DeviceError in the user's units, rather than left to the system's out-of-memory killer
  // (0: no limit). The CPU allocator starts with the memory available when it is created.
  void set_memory_limit(std::size_t bytes);
  std::size_t memory_limit() const;
  AllocatorStats stats() const;
  void reset_peak();

  // Rounds a request up to its size class: 64-byte steps up to 4 KiB, then 8 classes
  // per power of two (at most 12.5% slack).
  static std::size_t size_class(std::size_t bytes);

 private:
  void release_all_locked();

  RawAlloc raw_alloc_;
  RawFree raw_free_;
  const char* name_;
  mutable std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_lists_;
  std::size_t cache_limit_;
  std::size_t memory_limit_ = 0;
  AllocatorStats stats_;
};

// The device layer. A backend registers itself when the library is loaded, and its
// allocator and copy function when it can run here (the CUDA backend: a usable GPU).
void register_device_backend(DeviceType type);
// Was the library built with the CUDA backend, and is a GPU usable now?
bool cuda_built();
bool cuda_available();

// The allocator for a device. The CPU one always exists; the CUDA one is registered
// by the CUDA backend when it is built and a GPU is present.
Allocator& allocator_for(Device device);
CachingAllocator& cpu_allocator();
void register_device_allocator(DeviceType type, Allocator* allocator);

// "812 B", "3.4 MiB", "17.2 GiB": sizes in messages.
std::string format_bytes(std::uint64_t bytes);

// The memory the system could give this process now (MemAvailable), in bytes.
std::size_t available_system_memory();

// Copies bytes between devices; CPU to CPU is a memcpy, the rest goes through the copy
// function a device backend registers.
using DeviceCopyFn = void (*)(void* dst, Device dst_device, const void* src, Device src_device,
                              std::size_t bytes);
void register_device_copy(DeviceType type, DeviceCopyFn fn);
void device_copy(void* dst, Device dst_device, const void* src, Device src_device, std::size_t bytes);

}  // namespace tessera
