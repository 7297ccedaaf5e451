#include "storage/ballast.h"

#include "base/log.h"

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <string>
#include <sys/statvfs.h>
#include <unistd.h>

namespace hubcast::storage {

namespace {

// Allocates `bytes` in `fd`: fallocate, else (a file system without it) written zeros.
bool Allocate(int fd, uint64_t bytes) {
  if (::posix_fallocate(fd, 0, static_cast<off_t>(bytes)) == 0) return true;
  const std::string zeros(1 << 20, '\0');
  for (uint64_t done = 0; done < bytes;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), bytes - done));
    const ssize_t w = ::pwrite(fd, zeros.data(), n, static_cast<off_t>(done));
    if (w <= 0) return false;
    done += static_cast<uint64_t>(w);
  }
  return true;
}

}  // namespace

bool Ballast::Arm() {
  if (bytes_ == 0) return false;
  std::lock_guard lock(mu_);
  if (armed_) return true;
  const int fd = ::open(path_.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const bool ok = Allocate(fd, bytes_) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) {
    ::unlink(path_.c_str());
    return false;
  }
  armed_ = true;
  return true;
}

bool Ballast::Release() {
  std::lock_guard lock(mu_);
  if (!armed_) return false;
  armed_ = false;
  last_check_ = std::chrono::steady_clock::now();
  ::unlink(path_.c_str());
  Logger("store").Warn("the data disk is full: released ", bytes_ >> 20,
                       " MiB of reserved space for the store to recover; writes are refused "
                       "until as much is free again");
  return true;
}

bool Ballast::HasRoom() {
  {
    std::lock_guard lock(mu_);
    if (armed_ || bytes_ == 0) return true;
  }
  return FreeBytes() >= bytes_;
}

void Ballast::MaybeRearm() {
  {
    std::lock_guard lock(mu_);
    if (armed_ || bytes_ == 0) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_check_ < std::chrono::seconds(5)) return;
    last_check_ = now;
  }
  if (FreeBytes() < 3 * bytes_) return;
  if (Arm()) Logger("store").Info("reserved ", bytes_ >> 20, " MiB on the data disk again");
}

bool Ballast::armed() const {
  std::lock_guard lock(mu_);
  return armed_;
}

uint64_t Ballast::FreeBytes() const {
  const std::string dir = path_.substr(0, path_.find_last_of('/') + 1);
  struct statvfs fs {};
  if (::statvfs(dir.empty() ? "." : dir.c_str(), &fs) != 0) return UINT64_MAX;
  return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
}

}  // namespace hubcast::storage
