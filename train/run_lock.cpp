#include "train/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "tessera/autograd/error.h"

namespace tessera::train {

RunLock::RunLock(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  TESSERA_CHECK(!ec, IoError, "train.output_dir: cannot create {}: {}", dir.string(), ec.message());
  const std::filesystem::path file = dir / ".lock";
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  TESSERA_CHECK(fd_ >= 0, IoError, "train.output_dir: cannot create the lock file {}: {}", file.string(),
                std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char pid[32] = {};
    const ssize_t n = ::pread(fd_, pid, sizeof pid - 1, 0);
    std::string holder(pid, n > 0 ? static_cast<std::size_t>(n) : 0);
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw ConfigError(fmt::format(
          "train.output_dir: {} is in use by another run (pid {}); wait for it to end or choose another "
          "train.output_dir",
          dir.string(), holder.empty() ? "unknown" : holder));
    throw IoError(fmt::format("train.output_dir: cannot lock {}: {}", file.string(), std::strerror(err)));
  }
  const std::string mine = fmt::format("{}\n", ::getpid());
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, mine.data(), mine.size(), 0);
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing drops the lock
}

}  // namespace tessera::train
