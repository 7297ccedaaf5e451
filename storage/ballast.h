// Ballast: disk space reserved beside the store, so the store can recover from a full disk.
//
// RocksDB refuses every write after one failed for lack of space, and resumes (Store::Open's
// note on memtables) only once several MiB are free again: an operator who deletes a smaller
// file would leave the node answering 503. So a file of `bytes` (allocated, not sparse) is
// kept beside the store while the disk has room:
//   1. Arm() creates it (at start-up; again once the disk has three times its size free).
//   2. The store's first write that fails for lack of space calls Release(): the file goes,
//      and its space lets RocksDB resume, flush and compact.
//   3. While released, the store refuses writes itself (HasRoom() false) as long as less than
//      `bytes` is free: the reserve stays free for RocksDB; writes resume when space returns.
// Thread-safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace hubcast::storage {

class Ballast {
 public:
  // `path`: the file (on the store's file system); `bytes` 0 disables it.
  Ballast(std::string path, uint64_t bytes) : path_(std::move(path)), bytes_(bytes) {}

  // Creates the file when it is not there; false (and no file) when the disk has no room.
  bool Arm();
  // Deletes the file; true when it was there (the caller may retry what failed).
  bool Release();
  // False while the ballast is released and less than its size is free.
  bool HasRoom();
  // After a successful write: re-creates a released ballast once the disk has room for it
  // and as much again (checked at most every few seconds).
  void MaybeRearm();
  bool armed() const;

 private:
  // Free bytes on the file system of path_; UINT64_MAX when unknown.
  uint64_t FreeBytes() const;

  const std::string path_;
  const uint64_t bytes_;
  mutable std::mutex mu_;
  bool armed_ = false;
  std::chrono::steady_clock::time_point last_check_{};
};

}  // namespace hubcast::storage
