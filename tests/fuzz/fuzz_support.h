// Shared by the libFuzzer targets: input bytes as a file for readers that take a path,
// and the rule that only tessera::Error may escape a reader (anything else is a finding).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "tessera/autograd/error.h"

namespace tessera::fuzz {

// A per-process file in /dev/shm (memory, not disk) holding the current input.
inline std::filesystem::path input_file(const std::uint8_t* data, std::size_t size, const char* name) {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::path("/dev/shm") / ("tessera_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  const auto path = dir / name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data),
                                                                 static_cast<std::streamsize>(size));
  return path;
}

// Runs fn; a tessera::Error is the expected answer to bad input, any other exception is not.
template <class Fn>
void expect_only_tessera_errors(Fn&& fn) {
  try {
    fn();
  } catch (const tessera::Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "finding: a non-tessera exception escaped: %s\n", e.what());
    std::abort();
  }
}

// A property that must hold for every accepted input.
inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "finding: %s\n", what);
    std::abort();
  }
}

}  // namespace tessera::fuzz
