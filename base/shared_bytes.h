// SharedBytes: an immutable byte range inside a buffer shared by many owners. A message is
// encoded once and every recipient's outbound queue holds a SharedBytes into the same buffer
// (ARCHITECTURE.md, "Encoding once"); several ranges of one buffer may be in use at once
// (e.g. a whole frame and the body inside it).
//
// Thread-safety: the buffer is immutable once shared; copies may live on any thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace hubcast {

class SharedBytes {
 public:
  SharedBytes() = default;
  explicit SharedBytes(std::string bytes)
      : buf_(std::make_shared<const std::string>(std::move(bytes))),
        offset_(0),
        size_(buf_->size()) {}
  SharedBytes(std::shared_ptr<const std::string> buf, size_t offset, size_t size)
      : buf_(std::move(buf)), offset_(offset), size_(size) {}

  // A range of this range (offset and size relative to it; the caller keeps them inside).
  SharedBytes Sub(size_t offset, size_t size) const {
    return SharedBytes(buf_, offset_ + offset, size);
  }

  explicit operator bool() const { return buf_ != nullptr; }
  const char* data() const { return buf_->data() + offset_; }
  size_t size() const { return size_; }
  std::string_view view() const {
    return buf_ ? std::string_view(data(), size_) : std::string_view();
  }

 private:
  std::shared_ptr<const std::string> buf_;
  size_t offset_ = 0;
  size_t size_ = 0;
};

}  // namespace hubcast
