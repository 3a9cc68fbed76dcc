// One run per output directory: an exclusive lock on <dir>/.lock, held for the whole run.
// The kernel drops it when the holder exits however it exits, so a killed run never
// blocks the next; the file keeps the holder's PID for the message a second run gets.
#pragma once

#include <filesystem>

namespace tessera::train {

class RunLock {
 public:
  // Creates `dir` if needed and takes the lock. ConfigError (exit 2) naming the holder's PID
  // when another run holds it; IoError when the directory or the lock file cannot be made.
  explicit RunLock(const std::filesystem::path& dir);
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock();

 private:
  int fd_ = -1;
};

}  // namespace tessera::train
