// The messages of one benchmark phase: whom each must reach (a contiguous range of the
// process's members: a group, or one connection), which of them got it, and whether its
// publisher was acknowledged. From that come losses (expected minus distinct arrivals),
// duplicates (a member getting the same message twice) and strays (a member that was not a
// target). Every message id of the process is unique; ids of an earlier phase are "unknown".
//
// Thread-safety: none; the generator's one thread owns it.
#pragma once

#include <cstdint>
#include <vector>

namespace hubcast::bench {

class Tracker {
 public:
  struct Message {
    int64_t stamp_ns = 0;    // when it was published (latency origin)
    int32_t first = 0;       // first targeted member (local index)
    int32_t count = 0;       // targeted members, contiguous from `first`
    int32_t received = 0;    // distinct targeted members that got it
    uint32_t bits = 0;       // offset of its arrival bitset in bits_ (64-bit words)
    bool acked = false;      // the publisher got its acknowledgement (202, ack, PONG)
    bool failed = false;     // the server refused it: nothing is expected
    bool closed = false;     // complete, failed or given up: no longer in flight
    bool unslotted = false;  // its window slot is free (closed, or acked in overload mode)
  };
  enum class Arrival { kNew, kDuplicate, kStray, kUnknown };

  // Starts a phase whose first message id is `first_id`.
  void Reset(uint64_t first_id) {
    base_ = first_id;
    messages_.clear();
    bits_.clear();
  }

  // Registers the next message (id = base + number registered so far) and returns its id.
  uint64_t Add(int64_t stamp_ns, int first, int count) {
    Message message;
    message.stamp_ns = stamp_ns;
    message.first = first;
    message.count = count;
    message.bits = static_cast<uint32_t>(bits_.size());
    bits_.resize(bits_.size() + (count + 63) / 64, 0);
    messages_.push_back(message);
    return base_ + messages_.size() - 1;
  }

  Message* Find(uint64_t id) {
    if (id < base_ || id - base_ >= messages_.size()) return nullptr;
    return &messages_[id - base_];
  }

  // Records that member `local` got message `id`; *message is set unless kUnknown.
  Arrival Arrive(uint64_t id, int local, Message** message) {
    Message* m = Find(id);
    *message = m;
    if (m == nullptr) return Arrival::kUnknown;
    const int rank = local - m->first;
    if (rank < 0 || rank >= m->count) return Arrival::kStray;
    uint64_t& word = bits_[m->bits + rank / 64];
    const uint64_t bit = uint64_t{1} << (rank % 64);
    if ((word & bit) != 0) return Arrival::kDuplicate;
    word |= bit;
    ++m->received;
    return Arrival::kNew;
  }

  const std::vector<Message>& messages() const { return messages_; }

 private:
  uint64_t base_ = 0;
  std::vector<Message> messages_;
  std::vector<uint64_t> bits_;
};

}  // namespace hubcast::bench
