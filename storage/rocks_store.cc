#include "base/log.h"
#include "storage/ballast.h"
#include "storage/entry_codec.h"
#include "storage/record_codec.h"
#include "storage/store.h"

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <unordered_map>

namespace hubcast::storage {
namespace {

enum Cf { kMeta = 0, kLog, kOutcome, kConns, kMembers, kAcks, kUserGroups, kCfCount };
const char* const kCfNames[kCfCount] = {"meta",    "log",  "outcome",    "conns",
                                        "members", "acks", "user_groups"};

std::string HubKey(const std::string& hub) { return hub + '\0'; }
std::string PosKey(const std::string& hub, uint64_t pos) {
  std::string k = HubKey(hub);
  PutFixed64BE(&k, pos);
  return k;
}
std::string Join3(const std::string& a, const std::string& b, const std::string& c) {
  std::string k = a;
  k += '\0';
  k += b;
  k += '\0';
  k += c;
  return k;
}

// meta: "applied\0<hub>" -> position(BE64) time(BE64, two's complement); older stores wrote
// the position alone.
std::string AppliedKey(const std::string& hub) { return std::string("applied\0", 8) + hub; }
std::string AppliedValue(uint64_t pos, int64_t time_ms) {
  std::string v;
  PutFixed64BE(&v, pos);
  PutFixed64BE(&v, static_cast<uint64_t>(time_ms));
  return v;
}
std::string EpochKey(const std::string& hub) { return std::string("epoch\0", 6) + hub; }

// RocksDB's status converted at the boundary; a full disk is the one case callers retry.
bool IsNoSpace(const rocksdb::Status& s) {
  return s.IsNoSpace() || s.subcode() == rocksdb::Status::kNoSpace ||
         s.ToString().find("No space") != std::string::npos;
}

Status NoSpace(const char* what) {
  return Status::Unavailable(std::string(what) + ": no space left on the data disk");
}

Status Convert(const rocksdb::Status& s, const char* what) {
  if (s.ok()) return Status::Ok();
  if (IsNoSpace(s)) return NoSpace(what);
  if (s.IsCorruption()) return Status::InvalidArgument(std::string(what) + ": " + s.ToString());
  if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
    return Status::Unavailable(std::string(what) + ": " + s.ToString());
  }
  return Status::Internal(std::string(what) + ": " + s.ToString());
}

// RocksDB's info log, forwarded to ours (warnings and errors; the rest at debug).
class ForwardingLogger : public rocksdb::Logger {
 public:
  ForwardingLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  // Quiet until the store is open: a failed open is reported once, as Open's own error.
  void Enable() { enabled_.store(true); }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (!enabled_.load() || level < GetInfoLogLevel()) return;
    LogLevel ours =
        level >= rocksdb::InfoLogLevel::ERROR_LEVEL ? LogLevel::kError : LogLevel::kWarn;
    if (ours < GetLogLevel()) return;
    char buf[1024];
    std::vsnprintf(buf, sizeof buf, format, ap);
    LogLine(ours, "rocksdb", buf);
  }

 private:
  std::atomic<bool> enabled_{false};
};

// What a run of applied entries changed, as one RocksDB WriteBatch. The applied positions are
// kept per hub and written once, by Finish, with the last position of each hub.
class RocksApplyBatch final : public ApplyBatch {
 public:
  explicit RocksApplyBatch(const std::vector<rocksdb::ColumnFamilyHandle*>& cfs) : cfs_(cfs) {}

  void Add(const std::string& hub, uint64_t pos, const Entry& e, const ApplyResult& r,
           std::string_view log_entry) override {
    size_t before = b_.Count();
    if (!log_entry.empty()) {
      b_.Put(cfs_[kLog], PosKey(hub, pos), rocksdb::Slice(log_entry.data(), log_entry.size()));
      log_bytes_[hub] += log_entry.size();
    }
    for (const ConnectionRecord* c : r.touched) {
      b_.Put(cfs_[kConns], hub + '\0' + c->id, EncodeConnectionRecord(*c));
    }
    for (const auto& m : r.membership) {
      std::string key = Join3(hub, m.group, m.connection_id);
      if (m.joined) {
        b_.Put(cfs_[kMembers], key, "");
      } else {
        b_.Delete(cfs_[kMembers], key);
      }
    }
    for (const auto& id : r.closed) {
      b_.Delete(cfs_[kConns], hub + '\0' + id);
      std::string from = Join3(hub, id, "");
      std::string to = hub + '\0' + id + '\1';
      b_.DeleteRange(cfs_[kAcks], from, to);
    }
    if (r.ack_remembered && !e.origin_connection.empty()) {
      std::string k = Join3(hub, e.origin_connection, "");
      PutFixed64BE(&k, *r.ack_remembered);
      std::string arrival;
      PutFixed64BE(&arrival, pos);
      b_.Put(cfs_[kAcks], k, arrival);
      if (r.ack_forgotten) {
        std::string f = Join3(hub, e.origin_connection, "");
        PutFixed64BE(&f, *r.ack_forgotten);
        b_.Delete(cfs_[kAcks], f);
      }
    }
    for (const auto& ug : r.user_groups) {
      std::string key = Join3(hub, ug.user_id, ug.group);
      if (ug.expires_at_ms) {
        std::string v;
        PutFixed64BE(&v, static_cast<uint64_t>(*ug.expires_at_ms));
        b_.Put(cfs_[kUserGroups], key, v);
      } else {
        b_.Delete(cfs_[kUserGroups], key);
      }
    }
    if (!r.status.ok()) {
      b_.Put(cfs_[kOutcome], PosKey(hub, pos),
             std::string(1, static_cast<char>(static_cast<uint8_t>(r.status.code()))));
    }
    if (b_.Count() != before) changes_state_ = true;
    // Runs of one hub are the common case: skip the lookup when the hub repeats.
    if (last_applied_ == nullptr || last_hub_ != hub) {
      last_applied_ = &applied_[hub];
      last_hub_ = hub;
    }
    *last_applied_ = {pos, r.timestamp_ms};
  }

  bool changes_state() const override { return changes_state_; }
  bool empty() const override { return applied_.empty(); }

  // Adds the applied positions; call once, before writing.
  void Finish() {
    for (const auto& [hub, at] : applied_) {
      b_.Put(cfs_[kMeta], AppliedKey(hub), AppliedValue(at.first, at.second));
    }
  }
  rocksdb::WriteBatch& batch() { return b_; }
  const std::unordered_map<std::string, uint64_t>& log_bytes() const { return log_bytes_; }

 private:
  const std::vector<rocksdb::ColumnFamilyHandle*>& cfs_;
  rocksdb::WriteBatch b_;
  std::unordered_map<std::string, std::pair<uint64_t, int64_t>> applied_;  // position, time
  std::unordered_map<std::string, uint64_t> log_bytes_;
  bool changes_state_ = false;
  std::string last_hub_;
  std::pair<uint64_t, int64_t>* last_applied_ = nullptr;  // applied_[last_hub_] (stable)
};

class RocksStore final : public Store {
 public:
  RocksStore(std::unique_ptr<rocksdb::DB> db, std::vector<rocksdb::ColumnFamilyHandle*> cfs,
             const StoreOptions& options)
      : ballast_(options.path + ".ballast", options.ballast_bytes),
        db_(std::move(db)),
        cfs_(std::move(cfs)) {
    write_.sync = options.sync_writes;
  }
  ~RocksStore() override {
    for (auto* h : cfs_) db_->DestroyColumnFamilyHandle(h);
    db_->Close();
  }

  Status Init() {
    // Without room for it (a small or full disk) start-up goes on; it is made once there is.
    (void)ballast_.Arm();
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), cfs_[kMeta], "format", &v);
    if (s.IsNotFound()) {
      return Convert(db_->Put(write_, cfs_[kMeta], "format", std::to_string(kStoreFormatVersion)),
                     "write format version");
    }
    if (!s.ok()) return Convert(s, "read format version");
    uint32_t version = static_cast<uint32_t>(std::strtoul(v.c_str(), nullptr, 10));
    if (version > kStoreFormatVersion) {
      return Status::InvalidArgument("the data dir was written by a newer Hubcast (format " + v +
                                     ", this build reads up to " +
                                     std::to_string(kStoreFormatVersion) + ")");
    }
    if (version == 0) return Status::InvalidArgument("the data dir has an invalid format marker");
    return Status::Ok();
  }

  Result<std::vector<std::string>> Hubs() const override {
    std::vector<std::string> hubs;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cfs_[kMeta]));
    const std::string prefix("epoch\0", 6);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      hubs.push_back(it->key().ToString().substr(prefix.size()));
    }
    // A read error ends the scan like the last key would: without the check, hubs would
    // silently go missing at start-up.
    if (Status s = Convert(it->status(), "list the hubs"); !s.ok()) return s;
    return hubs;
  }

  Result<uint64_t> Epoch(const std::string& hub, uint64_t new_epoch) override {
    std::lock_guard lock(epoch_mu_);
    std::string key = EpochKey(hub), v;
    auto s = db_->Get(rocksdb::ReadOptions(), cfs_[kMeta], key, &v);
    if (s.ok() && v.size() == 8) return DecodeFixed64BE(v.data());
    if (!s.IsNotFound()) return Convert(s, "read epoch");
    v.clear();
    PutFixed64BE(&v, new_epoch);
    if (Status st = Convert(db_->Put(write_, cfs_[kMeta], key, v), "write epoch"); !st.ok()) {
      return st;
    }
    return new_epoch;
  }

  Status AppendLog(const std::vector<LogAppend>& entries) override {
    rocksdb::WriteBatch b;
    // Entries come in runs of one hub: count each run's bytes once.
    std::vector<std::pair<std::atomic<uint64_t>*, uint64_t>> grown;
    std::string_view last_hub;
    std::string key;
    for (const LogAppend& a : entries) {
      if (grown.empty() || a.hub != last_hub) {
        last_hub = a.hub;
        // Seeded from disk before the write, so the new entries are counted once.
        grown.emplace_back(&LogBytesFor(std::string(a.hub)), 0);
      }
      grown.back().second += a.entry.size();
      key.assign(a.hub);
      key += '\0';
      PutFixed64BE(&key, a.position);
      b.Put(cfs_[kLog], key, rocksdb::Slice(a.entry.data(), a.entry.size()));
    }
    Status s = Write(&b, "append to the log");
    if (s.ok()) {
      for (auto& [counter, bytes] : grown) counter->fetch_add(bytes, std::memory_order_relaxed);
    }
    return s;
  }

  Result<uint64_t> FirstLogPosition(const std::string& hub) const override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cfs_[kLog]));
    std::string prefix = HubKey(hub);
    it->Seek(prefix);
    if (!it->Valid() || !it->key().starts_with(prefix)) {
      if (Status s = Convert(it->status(), "read the log"); !s.ok()) return s;
      return uint64_t{0};
    }
    return DecodeFixed64BE(it->key().data() + prefix.size());
  }

  Result<uint64_t> LastLogPosition(const std::string& hub) const override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cfs_[kLog]));
    std::string prefix = HubKey(hub);
    std::string end = hub + '\1';
    it->SeekForPrev(end);
    if (!it->Valid() || !it->key().starts_with(prefix)) {
      if (Status s = Convert(it->status(), "read the log"); !s.ok()) return s;
      return uint64_t{0};
    }
    return DecodeFixed64BE(it->key().data() + prefix.size());
  }

  Status ScanLog(const std::string& hub, uint64_t from, uint64_t to,
                 const std::function<bool(uint64_t, std::string_view)>& fn) const override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cfs_[kLog]));
    std::string prefix = HubKey(hub);
    for (it->Seek(PosKey(hub, from)); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      uint64_t pos = DecodeFixed64BE(it->key().data() + prefix.size());
      if (pos > to) break;
      if (!fn(pos, std::string_view(it->value().data(), it->value().size()))) break;
    }
    return Convert(it->status(), "read the log");
  }

  Result<StatusCode> Outcome(const std::string& hub, uint64_t pos) const override {
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), cfs_[kOutcome], PosKey(hub, pos), &v);
    if (s.IsNotFound()) return StatusCode::kOk;
    if (!s.ok()) return Convert(s, "read an apply outcome");
    if (v.empty()) return StatusCode::kOk;
    return static_cast<StatusCode>(static_cast<uint8_t>(v[0]));
  }

  Status TrimLogBefore(const std::string& hub, uint64_t pos) override {
    auto first_or = FirstLogPosition(hub);
    if (!first_or.ok()) return first_or.status();
    uint64_t first = *first_or;
    if (first == 0 || first >= pos) return Status::Ok();
    // Account the bytes leaving, for the size limit.
    uint64_t bytes = 0;
    Status scanned = ScanLog(hub, first, pos - 1, [&](uint64_t, std::string_view v) {
      bytes += v.size();
      return true;
    });
    if (!scanned.ok()) return scanned;
    rocksdb::WriteBatch b;
    b.DeleteRange(cfs_[kLog], PosKey(hub, 0), PosKey(hub, pos));
    b.DeleteRange(cfs_[kOutcome], PosKey(hub, 0), PosKey(hub, pos));
    Status s = Write(&b, "trim the log");
    if (s.ok()) {
      auto& counter = LogBytesFor(hub);
      uint64_t cur = counter.load();
      while (!counter.compare_exchange_weak(cur, cur > bytes ? cur - bytes : 0)) {
      }
    }
    return s;
  }

  uint64_t LogBytes(const std::string& hub) const override {
    return const_cast<RocksStore*>(this)->LogBytesFor(hub).load(std::memory_order_relaxed);
  }

  std::unique_ptr<ApplyBatch> NewApplyBatch() override {
    return std::make_unique<RocksApplyBatch>(cfs_);
  }

  std::vector<std::pair<std::string, uint64_t>> EngineStats() const override {
    static constexpr std::pair<const char*, const char*> kProperties[] = {
        {"live_data_bytes", "rocksdb.estimate-live-data-size"},
        {"sst_files_bytes", "rocksdb.total-sst-files-size"},
        {"memtable_bytes", "rocksdb.cur-size-all-mem-tables"},
        {"pending_compaction_bytes", "rocksdb.estimate-pending-compaction-bytes"},
        {"background_errors", "rocksdb.background-errors"},
    };
    std::vector<std::pair<std::string, uint64_t>> out;
    for (const auto& [name, property] : kProperties) {
      uint64_t total = 0, v = 0;
      for (auto* cf : cfs_) {
        if (db_->GetIntProperty(cf, property, &v)) total += v;
        if (std::string_view(name) == "background_errors") break;  // one count for the DB
      }
      out.emplace_back(name, total);
    }
    return out;
  }

  Status Commit(std::unique_ptr<ApplyBatch> batch) override {
    auto* rb = static_cast<RocksApplyBatch*>(batch.get());
    if (rb->empty()) return Status::Ok();
    rb->Finish();
    // Counted before the write like AppendLog, so a hub's counter is seeded from disk once.
    std::vector<std::pair<std::atomic<uint64_t>*, uint64_t>> grown;
    for (const auto& [hub, bytes] : rb->log_bytes()) grown.emplace_back(&LogBytesFor(hub), bytes);
    // Batches are written in commit order. One that fails (a full disk) waits, with every
    // later one behind it, and is written first when a write succeeds again; the entries are
    // durable in the log, so a restart meanwhile re-applies from the last written position.
    std::lock_guard lock(commit_mu_);
    deferred_.push_back({std::move(rb->batch()), std::move(grown)});
    while (!deferred_.empty()) {
      // Never fsync'd: the log entry is (with --sync-writes), and the WAL is recovered as a
      // prefix, so a lost apply batch is re-applied from the log at start-up.
      Status s = Write(&deferred_.front().batch, "apply", /*sync=*/false);
      if (!s.ok()) {
        return Status::Unavailable(s.message() + " (" + std::to_string(deferred_.size()) +
                                   " apply batches wait to be written)");
      }
      for (auto& [counter, bytes] : deferred_.front().log_bytes) {
        counter->fetch_add(bytes, std::memory_order_relaxed);
      }
      deferred_.pop_front();
    }
    return Status::Ok();
  }

  Result<uint64_t> AppliedPosition(const std::string& hub) const override {
    auto at = Applied(hub);
    if (!at.ok()) return at.status();
    return at->first;
  }

  Result<ViewState> LoadViewState(const std::string& hub) const override {
    ViewState state;
    auto applied = Applied(hub);
    if (!applied.ok()) return applied.status();
    state.applied_position = applied->first;
    state.last_timestamp_ms = applied->second;
    std::string prefix = HubKey(hub);
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cfs_[kConns]));
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      auto rec = DecodeConnectionRecord(std::string_view(it->value().data(), it->value().size()));
      if (!rec.ok()) return rec.status();
      ConnectionState& cs = state.connections.emplace_back();
      std::unique_ptr<rocksdb::Iterator> a(db_->NewIterator(rocksdb::ReadOptions(), cfs_[kAcks]));
      std::string ap = Join3(hub, rec->id, "");
      for (a->Seek(ap); a->Valid() && a->key().starts_with(ap); a->Next()) {
        if (a->key().size() != ap.size() + 8) {
          return Status::InvalidArgument("corrupt ackId key in hub " + hub);
        }
        AckRecord ack{DecodeFixed64BE(a->key().data() + ap.size()), 0};
        // Stores before arrival positions kept an empty value: those sort first, by id.
        if (a->value().size() == 8) ack.position = DecodeFixed64BE(a->value().data());
        cs.acks.push_back(ack);
      }
      if (Status s = Convert(a->status(), "load ackIds"); !s.ok()) return s;
      std::stable_sort(cs.acks.begin(), cs.acks.end(),
                       [](const AckRecord& x, const AckRecord& y) { return x.position < y.position; });
      cs.record = std::move(rec).value();
    }
    if (Status s = Convert(it->status(), "load connections"); !s.ok()) return s;
    std::unique_ptr<rocksdb::Iterator> u(
        db_->NewIterator(rocksdb::ReadOptions(), cfs_[kUserGroups]));
    for (u->Seek(prefix); u->Valid() && u->key().starts_with(prefix); u->Next()) {
      std::string rest = u->key().ToString().substr(prefix.size());
      size_t sep = rest.find('\0');
      if (sep == std::string::npos || u->value().size() != 8) {
        return Status::InvalidArgument("corrupt user-group membership in hub " + hub);
      }
      state.user_groups.push_back({rest.substr(0, sep), rest.substr(sep + 1),
                                   static_cast<int64_t>(DecodeFixed64BE(u->value().data()))});
    }
    if (Status s = Convert(u->status(), "load user-group memberships"); !s.ok()) return s;
    return state;
  }

  Status InstallViewState(const std::string& hub, uint64_t epoch,
                          const ViewState& state) override {
    rocksdb::WriteBatch b;
    const std::string from = HubKey(hub), to = hub + '\1';
    for (Cf cf : {kLog, kOutcome, kConns, kMembers, kAcks, kUserGroups}) {
      b.DeleteRange(cfs_[cf], from, to);
    }
    std::string v;
    PutFixed64BE(&v, epoch);
    b.Put(cfs_[kMeta], EpochKey(hub), v);
    b.Put(cfs_[kMeta], AppliedKey(hub), AppliedValue(state.applied_position,
                                                    state.last_timestamp_ms));
    for (const ConnectionState& cs : state.connections) {
      const ConnectionRecord& r = cs.record;
      b.Put(cfs_[kConns], hub + '\0' + r.id, EncodeConnectionRecord(r));
      for (const auto& g : r.groups) b.Put(cfs_[kMembers], Join3(hub, g, r.id), "");
      for (const AckRecord& a : cs.acks) {
        std::string k = Join3(hub, r.id, "");
        PutFixed64BE(&k, a.ack_id);
        std::string arrival;
        PutFixed64BE(&arrival, a.position);
        b.Put(cfs_[kAcks], k, arrival);
      }
    }
    for (const UserGroupRecord& ug : state.user_groups) {
      std::string expiry;
      PutFixed64BE(&expiry, static_cast<uint64_t>(ug.expires_at_ms));
      b.Put(cfs_[kUserGroups], Join3(hub, ug.user_id, ug.group), expiry);
    }
    // Applied before: a deferred batch of the old state must not land on top of the new one.
    std::lock_guard lock(commit_mu_);
    if (!deferred_.empty()) {
      return Status::Unavailable("apply batches still wait to be written (a full disk)");
    }
    Status s = Write(&b, "install a hub's state");
    if (s.ok()) {
      // The hub's log is empty now (the counter stays: others may hold it).
      LogBytesFor(hub).store(0, std::memory_order_relaxed);
    }
    return s;
  }

  // Counts log bytes per hub, seeded from disk on first use.
  std::atomic<uint64_t>& LogBytesFor(const std::string& hub) {
    std::lock_guard lock(bytes_mu_);
    auto it = log_bytes_.find(hub);
    if (it != log_bytes_.end()) return *it->second;
    auto counter = std::make_unique<std::atomic<uint64_t>>(0);
    std::unique_ptr<rocksdb::Iterator> i(db_->NewIterator(rocksdb::ReadOptions(), cfs_[kLog]));
    std::string prefix = HubKey(hub);
    uint64_t total = 0;
    for (i->Seek(prefix); i->Valid() && i->key().starts_with(prefix); i->Next()) {
      total += i->value().size();
    }
    counter->store(total);
    return *log_bytes_.emplace(hub, std::move(counter)).first->second;
  }

 private:
  // The applied position and apply time of a hub (0, 0 when it has none).
  Result<std::pair<uint64_t, int64_t>> Applied(const std::string& hub) const {
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), cfs_[kMeta], AppliedKey(hub), &v);
    if (s.IsNotFound()) return std::pair<uint64_t, int64_t>{0, 0};
    if (!s.ok()) return Convert(s, "read the applied position");
    if (v.size() != 8 && v.size() != 16) {
      return Status::InvalidArgument("corrupt applied position of hub " + hub);
    }
    int64_t time = v.size() == 16 ? static_cast<int64_t>(DecodeFixed64BE(v.data() + 8)) : 0;
    return std::pair<uint64_t, int64_t>{DecodeFixed64BE(v.data()), time};
  }

  // After a failed write (a full disk) RocksDB refuses every write until Resume() succeeds;
  // try it (at most once a second) so the node recovers by itself when space returns.
  // The ballast (ballast.h) is released at the first write that finds the disk full; until
  // as much is free again, writes are refused here, so RocksDB keeps that room to recover in.
  Status Write(rocksdb::WriteBatch* batch, const char* what, bool sync = true) {
    if (!ballast_.HasRoom()) return NoSpace(what);
    const rocksdb::WriteOptions& opts = sync ? write_ : no_sync_;
    rocksdb::Status s = db_->Write(opts, batch);
    if (s.ok()) {
      ballast_.MaybeRearm();
      return Status::Ok();
    }
    const bool released = IsNoSpace(s) && ballast_.Release();
    auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(resume_mu_);
      if (released || now - last_resume_ >= std::chrono::seconds(1)) {
        last_resume_ = now;
        if (db_->Resume().ok() && ballast_.HasRoom()) s = db_->Write(opts, batch);
      }
    }
    return Convert(s, what);
  }

  Ballast ballast_;
  struct Deferred {
    rocksdb::WriteBatch batch;
    std::vector<std::pair<std::atomic<uint64_t>*, uint64_t>> log_bytes;  // replay-log growth
  };
  std::mutex commit_mu_;
  std::deque<Deferred> deferred_;  // apply batches not written yet, in order
  std::mutex resume_mu_;
  std::chrono::steady_clock::time_point last_resume_{};
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;
  rocksdb::WriteOptions write_;
  rocksdb::WriteOptions no_sync_;
  std::mutex epoch_mu_;
  std::mutex bytes_mu_;
  std::unordered_map<std::string, std::unique_ptr<std::atomic<uint64_t>>> log_bytes_;
};

}  // namespace

Status OpenError(const rocksdb::Status& s, const std::string& path) {
  std::string msg = s.ToString();
  if (msg.find("lock") != std::string::npos ||
      msg.find("Resource temporarily") != std::string::npos) {
    return Status::Unavailable("the data dir " + path + " is locked by another process (" + msg +
                               ")");
  }
  if (s.IsCorruption())
    return Status::InvalidArgument("the data dir " + path + " is corrupt: " + msg);
  if (s.IsInvalidArgument()) {
    return Status::InvalidArgument("the data dir " + path + " cannot be opened: " + msg);
  }
  return Status::Internal("cannot open the data dir " + path + ": " + msg);
}

Result<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  rocksdb::DBOptions db_opts;
  db_opts.create_if_missing = true;
  db_opts.paranoid_checks = true;
  db_opts.max_background_jobs = 2;
  // RocksDB's own diagnostics go to our log, not to a LOG file on the data disk: a full disk
  // must not take the diagnostics (and, with an assert-enabled build, the process) with it.
  auto info_log = std::make_shared<ForwardingLogger>();
  db_opts.info_log = info_log;
  rocksdb::ColumnFamilyOptions cf_opts;
  // Small memtables: RocksDB only resumes after a full disk when this much space is free.
  cf_opts.write_buffer_size = 2 << 20;
  rocksdb::ColumnFamilyOptions log_opts = cf_opts;
  log_opts.write_buffer_size = 8 << 20;
  // The log takes every append: room for memtables to wait for their flush without stalling
  // writes under a burst.
  log_opts.max_write_buffer_number = 4;

  // An existing store must have every column family: creating a missing one would hide a
  // damaged MANIFEST (and drop its WAL records). The format is checked read-only first, so a
  // store written by a newer Hubcast is refused without being touched.
  std::vector<std::string> existing;
  bool exists = rocksdb::DB::ListColumnFamilies(db_opts, options.path, &existing).ok();
  if (exists) {
    for (const char* name : kCfNames) {
      if (std::find(existing.begin(), existing.end(), name) == existing.end()) {
        return Status::InvalidArgument("the data dir " + options.path +
                                       " is corrupt or incomplete: column family '" + name +
                                       "' is missing");
      }
    }
    std::vector<rocksdb::ColumnFamilyDescriptor> ro_descs;
    for (const auto& name : existing) ro_descs.emplace_back(name, cf_opts);
    std::vector<rocksdb::ColumnFamilyHandle*> ro_handles;
    rocksdb::DB* ro = nullptr;
    auto s = rocksdb::DB::OpenForReadOnly(db_opts, options.path, ro_descs, &ro_handles, &ro);
    if (!s.ok()) return OpenError(s, options.path);
    std::string v;
    size_t meta = std::find(existing.begin(), existing.end(), "meta") - existing.begin();
    auto got = ro->Get(rocksdb::ReadOptions(), ro_handles[meta], "format", &v);
    for (auto* h : ro_handles) ro->DestroyColumnFamilyHandle(h);
    delete ro;
    if (got.ok() && std::strtoul(v.c_str(), nullptr, 10) > kStoreFormatVersion) {
      return Status::InvalidArgument("the data dir was written by a newer Hubcast (format " + v +
                                     ", this build reads up to " +
                                     std::to_string(kStoreFormatVersion) + ")");
    }
  } else {
    db_opts.create_missing_column_families = true;  // a new store
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  descs.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_opts);
  for (const char* name : kCfNames) {
    descs.emplace_back(name, std::string(name) == "log" ? log_opts : cf_opts);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(db_opts, options.path, descs, &handles, &raw);
  if (!s.ok()) return OpenError(s, options.path);
  std::unique_ptr<rocksdb::DB> db(raw);
  // handles[0] is the default family, unused.
  db->DestroyColumnFamilyHandle(handles[0]);
  handles.erase(handles.begin());
  auto store = std::make_unique<RocksStore>(std::move(db), std::move(handles), options);
  if (Status st = store->Init(); !st.ok()) return st;
  info_log->Enable();
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace hubcast::storage
