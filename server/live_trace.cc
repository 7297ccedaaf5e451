#include "server/live_trace.h"

#include "base/base64.h"
#include "base/json.h"

#include <algorithm>

namespace hubcast::server {
namespace {

const char* ScopeName(storage::Scope s) {
  switch (s) {
    case storage::Scope::kAll:
      return "all";
    case storage::Scope::kGroup:
      return "group";
    case storage::Scope::kUser:
      return "user";
    case storage::Scope::kConnection:
      return "connection";
  }
  return "?";
}

// {"type":T,"position":P,"time":MS, then the caller's members, then }.
std::string Begin(const char* type, uint64_t position, int64_t time_ms) {
  std::string out = "{\"type\":\"";
  out += type;
  out += "\",\"position\":" + std::to_string(position) + ",\"time\":" + std::to_string(time_ms);
  return out;
}

void Member(std::string& out, const char* name, std::string_view value) {
  out += ",\"";
  out += name;
  out += "\":";
  json::AppendQuoted(out, value);
}

// The payload, cut to LiveTrace::kPayloadBytes (on a UTF-8 boundary for text; base64 of the
// first bytes for binary).
void Payload(std::string& out, const storage::Entry& e) {
  const bool binary =
      e.data_type == storage::DataType::kBinary || e.data_type == storage::DataType::kProtobuf;
  size_t n = std::min(e.data.size(), LiveTrace::kPayloadBytes);
  if (!binary) {
    while (n > 0 && n < e.data.size() && (static_cast<unsigned char>(e.data[n]) & 0xC0) == 0x80) {
      --n;  // do not split a UTF-8 sequence
    }
  }
  std::string_view cut(e.data.data(), n);
  if (binary || !json::IsValidUtf8(cut)) {
    Member(out, "payloadBase64", Base64Encode(cut));
  } else {
    Member(out, "payload", cut);
  }
  out += ",\"bytes\":" + std::to_string(e.data.size());
  out += ",\"cut\":";
  out += n < e.data.size() ? "true" : "false";
}

}  // namespace

std::vector<std::string> TraceEvents(uint64_t position, const storage::Entry& e,
                                     const storage::ApplyResult& r) {
  std::vector<std::string> out;
  const int64_t t = e.timestamp_ms;
  switch (e.kind) {
    case storage::EntryKind::kConnectionOpen: {
      if (!r.status.ok()) break;
      std::string ev = Begin("connect", position, t);
      Member(ev, "connectionId", e.origin_connection);
      if (e.user_id) Member(ev, "userId", *e.user_id);
      Member(ev, "subprotocol", e.subprotocol.empty() ? "none" : e.subprotocol);
      out.push_back(ev + "}");
      break;
    }
    case storage::EntryKind::kConnectionClose:
    case storage::EntryKind::kCloseConnections:
    case storage::EntryKind::kNodeDown:
      for (const auto& rec : r.closed_records) {
        std::string ev = Begin("disconnect", position, t);
        Member(ev, "connectionId", rec.id);
        if (rec.user_id) Member(ev, "userId", *rec.user_id);
        Member(ev, "reason", e.kind == storage::EntryKind::kNodeDown ? "node down" : e.reason);
        out.push_back(ev + "}");
      }
      break;
    case storage::EntryKind::kSend: {
      std::string ev = Begin("message", position, t);
      Member(ev, "scope", ScopeName(e.scope));
      if (e.scope != storage::Scope::kAll) Member(ev, "target", e.target);
      Member(ev, "from", e.origin_connection.empty() ? "rest" : e.origin_connection);
      Member(ev, "dataType", storage::DataTypeName(e.data_type));
      Payload(ev, e);
      ev += ",\"recipients\":" + std::to_string(r.recipients.size());
      if (!r.status.ok()) Member(ev, "error", r.status.message());
      out.push_back(ev + "}");
      break;
    }
    default:
      break;
  }
  // Memberships, whatever changed them (a client's join, REST, a close); a close's own
  // leaves are implied by its disconnect.
  if (e.kind != storage::EntryKind::kConnectionClose &&
      e.kind != storage::EntryKind::kCloseConnections && e.kind != storage::EntryKind::kNodeDown) {
    for (const auto& m : r.membership) {
      std::string ev = Begin(m.joined ? "join" : "leave", position, t);
      Member(ev, "connectionId", m.connection_id);
      Member(ev, "group", m.group);
      out.push_back(ev + "}");
    }
  }
  return out;
}

std::optional<std::string> LiveTrace::Watcher::Next(std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, wait, [&] { return !events_.empty() || lost_ > 0; })) {
    return std::nullopt;
  }
  if (lost_ > 0) {
    std::string ev = "{\"type\":\"lost\",\"events\":" + std::to_string(lost_) + "}";
    lost_ = 0;
    return ev;
  }
  std::string ev = std::move(events_.front());
  events_.pop_front();
  return ev;
}

std::shared_ptr<LiveTrace::Watcher> LiveTrace::Watch(const std::string& hub) {
  auto* w = new Watcher;
  w->hub_ = hub;
  {
    std::lock_guard lock(mu_);
    watchers_.push_back(w);
    watching_.store(static_cast<int>(watchers_.size()), std::memory_order_relaxed);
  }
  return std::shared_ptr<Watcher>(w, [this](Watcher* gone) {
    Forget(gone);
    delete gone;
  });
}

void LiveTrace::Forget(Watcher* watcher) {
  std::lock_guard lock(mu_);
  std::erase(watchers_, watcher);
  watching_.store(static_cast<int>(watchers_.size()), std::memory_order_relaxed);
}

void LiveTrace::RecordSlow(const std::string& hub, uint64_t position, const storage::Entry& entry,
                           const storage::ApplyResult& result) {
  std::lock_guard lock(mu_);
  std::vector<std::string> events;
  bool formatted = false;
  for (Watcher* w : watchers_) {
    if (w->hub_ != hub) continue;
    if (!formatted) {
      events = TraceEvents(position, entry, result);
      formatted = true;
    }
    if (events.empty()) return;
    {
      std::lock_guard wl(w->mu_);
      for (const auto& ev : events) {
        if (w->events_.size() >= kMaxQueued) {
          w->events_.pop_front();
          ++w->lost_;
        }
        w->events_.push_back(ev);
      }
    }
    w->cv_.notify_one();
  }
}

}  // namespace hubcast::server
