// LazyBox<T>: a value (a container, usually) that holds no heap memory until it is first
// written, for per-connection state that most connections never use (client SDK 1.1
// invocations and group streams): an empty std::map or std::unordered_set still costs 48-56
// bytes inline, for each of tens of thousands of idle connections; a LazyBox costs a pointer.
//
// get() reads (an unallocated box reads as a shared, never modified, default T); mut()
// allocates on first use and returns the value to change; Trim() frees it again when it is
// empty().
//
// Thread-safety: as T (none: one owner at a time); the shared default is never written.
#pragma once

#include <memory>

namespace hubcast {

template <typename T>
class LazyBox {
 public:
  const T& get() const { return value_ ? *value_ : Empty(); }
  T& mut() {
    if (!value_) value_ = std::make_unique<T>();
    return *value_;
  }
  // Whether it holds heap memory now.
  bool allocated() const { return value_ != nullptr; }
  // Frees the value if it is empty (T::empty()).
  void Trim() {
    if (value_ && value_->empty()) value_.reset();
  }

 private:
  static const T& Empty() {
    static const T empty;
    return empty;
  }

  std::unique_ptr<T> value_;
};

}  // namespace hubcast
