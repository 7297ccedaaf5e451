// LazyDeque<T>: a FIFO queue that holds no heap memory until something is queued, and gives
// it back on request once it is empty.
//
// libstdc++'s std::deque allocates its map and a 512-byte node when it is constructed, even if
// nothing is ever queued: about 600 bytes for each idle connection's outbound queue and each
// unacknowledged-message queue, per connection, forever. A LazyDeque allocates its deque on
// the first push and frees it in clear() and in Trim() when empty. pop_front keeps it: a busy
// queue drains and refills once per delivery, and an allocation each time would cost more
// than the delivery's own work; the owner trims from a periodic tick instead.
//
// The subset of std::deque's interface that the queues use; iterators are std::deque's (an
// empty queue iterates over a shared empty deque).
//
// Thread-safety: as std::deque (none: one owner at a time).
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <utility>

namespace hubcast {

template <typename T>
class LazyDeque {
 public:
  using value_type = T;
  using iterator = typename std::deque<T>::iterator;
  using const_iterator = typename std::deque<T>::const_iterator;

  LazyDeque() = default;
  LazyDeque(LazyDeque&&) noexcept = default;
  LazyDeque& operator=(LazyDeque&&) noexcept = default;
  // Takes over a whole deque (an empty one frees the storage).
  LazyDeque& operator=(std::deque<T>&& items) {
    if (items.empty()) {
      items_.reset();
    } else {
      items_ = std::make_unique<std::deque<T>>(std::move(items));
    }
    return *this;
  }

  bool empty() const { return !items_ || items_->empty(); }
  // Whether it holds heap memory now.
  bool allocated() const { return items_ != nullptr; }
  size_t size() const { return items_ ? items_->size() : 0; }

  void push_back(const T& value) { Items().push_back(value); }
  void push_back(T&& value) { Items().push_back(std::move(value)); }
  template <typename... Args>
  T& emplace_back(Args&&... args) {
    return Items().emplace_back(std::forward<Args>(args)...);
  }

  // Preconditions as std::deque's: not empty.
  T& front() { return items_->front(); }
  const T& front() const { return items_->front(); }
  T& back() { return items_->back(); }
  const T& back() const { return items_->back(); }
  void pop_front() { items_->pop_front(); }
  // Precondition: i < size().
  T& operator[](size_t i) { return (*items_)[i]; }
  const T& operator[](size_t i) const { return (*items_)[i]; }
  void clear() { items_.reset(); }
  // Frees the storage if the queue is empty.
  void Trim() {
    if (items_ && items_->empty()) items_.reset();
  }

  iterator begin() { return items_ ? items_->begin() : Empty().begin(); }
  iterator end() { return items_ ? items_->end() : Empty().end(); }
  const_iterator begin() const { return items_ ? items_->cbegin() : Empty().cbegin(); }
  const_iterator end() const { return items_ ? items_->cend() : Empty().cend(); }

 private:
  std::deque<T>& Items() {
    if (!items_) items_ = std::make_unique<std::deque<T>>();
    return *items_;
  }
  // Never modified: begin() == end() on it, from any thread.
  static std::deque<T>& Empty() {
    static std::deque<T> empty;
    return empty;
  }

  std::unique_ptr<std::deque<T>> items_;
};

}  // namespace hubcast
