// Tests of storage/store.h (the RocksDB store in storage/rocks_store.cc), each against a real
// RocksDB database in a fresh temporary directory. Where the Store API cannot show what is on
// disk (the members index, which outcomes were written, the format marker), the test closes the
// store and opens the database directly with the same column families.
#include "base/status.h"
#include "storage/entry.h"
#include "storage/entry_codec.h"
#include "storage/hub_view.h"
#include "storage/permissions.h"
#include "storage/store.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include "tests/unit/testing/entries.h"
#include "tests/unit/testing/test_util.h"
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace hubcast::storage {
namespace {

using hubcast::testing::Close;
using hubcast::testing::Open;

using hubcast::testing::TempDir;

namespace fs = std::filesystem;

// Opens the database behind a (closed) store directly, with every column family it has.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    rocksdb::DBOptions options;
    std::vector<std::string> names;
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(options, path, &names);
    EXPECT_TRUE(s.ok()) << s.ToString();
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const auto& name : names) descs.emplace_back(name, rocksdb::ColumnFamilyOptions());
    rocksdb::DB* raw = nullptr;
    s = rocksdb::DB::Open(options, path, descs, &handles_, &raw);
    EXPECT_TRUE(s.ok()) << s.ToString();
    db_.reset(raw);
  }
  ~RawDb() {
    if (!db_) return;
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
    (void)db_->Close();
  }
  bool ok() const { return db_ != nullptr; }

  rocksdb::ColumnFamilyHandle* Cf(std::string_view name) {
    for (auto* h : handles_) {
      if (h->GetName() == name) return h;
    }
    ADD_FAILURE() << "no column family " << name;
    return nullptr;
  }
  std::vector<std::string> Keys(std::string_view cf) {
    std::vector<std::string> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), Cf(cf)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) out.push_back(it->key().ToString());
    return out;
  }
  void Put(std::string_view cf, const std::string& key, const std::string& value) {
    rocksdb::Status s = db_->Put(rocksdb::WriteOptions(), Cf(cf), key, value);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  // Moves every column family's memtable into a table file.
  void FlushAll() {
    rocksdb::Status s = db_->Flush(rocksdb::FlushOptions(), handles_);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }

 private:
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::unique_ptr<rocksdb::DB> db_;
};

std::string Key(std::initializer_list<std::string_view> parts) {
  std::string k;
  bool first = true;
  for (auto p : parts) {
    if (!first) k += '\0';
    k += p;
    first = false;
  }
  return k;
}

std::string PosKey(const std::string& hub, uint64_t pos) {
  std::string k = hub + '\0';
  PutFixed64BE(&k, pos);
  return k;
}

Entry ClientJoin(const std::string& origin, const std::string& group, uint64_t ack_id) {
  Entry e;
  e.kind = EntryKind::kAddToGroups;
  e.scope = Scope::kConnection;
  e.target = origin;
  e.groups = {group};
  e.origin_connection = origin;
  e.ack_id = ack_id;
  e.required_permission = Permission::kJoinLeaveGroup;
  e.permission_target = group;
  return e;
}

Entry ClientSendToGroup(const std::string& origin, const std::string& group, uint64_t ack_id) {
  Entry e;
  e.kind = EntryKind::kSend;
  e.scope = Scope::kGroup;
  e.target = group;
  e.origin_connection = origin;
  e.ack_id = ack_id;
  e.required_permission = Permission::kSendToGroup;
  e.permission_target = group;
  e.from = MessageFrom::kGroup;
  e.data = "hi";
  return e;
}

Entry SendToAll(std::string data) {
  Entry e;
  e.kind = EntryKind::kSend;
  e.scope = Scope::kAll;
  e.data = std::move(data);
  return e;
}

Entry CheckpointOf(std::vector<std::pair<std::string, uint64_t>> acks) {
  Entry e;
  e.kind = EntryKind::kCheckpoint;
  e.acks = std::move(acks);
  return e;
}

struct Loaded {
  ConnectionRecord record;
  std::vector<uint64_t> acks;
};

// The stored connections with their ackIds in arrival order.
std::map<std::string, Loaded> LoadAll(const Store& store, const std::string& hub) {
  std::map<std::string, Loaded> out;
  auto state = store.LoadViewState(hub);
  EXPECT_TRUE(state.ok()) << state.status().message();
  if (!state.ok()) return out;
  for (auto& cs : state->connections) {
    std::vector<uint64_t> acks;
    for (const auto& a : cs.acks) acks.push_back(a.ack_id);
    std::string id = cs.record.id;
    out[id] = {std::move(cs.record), std::move(acks)};
  }
  return out;
}

std::vector<std::pair<uint64_t, std::string>> Scan(const Store& store, const std::string& hub,
                                                   uint64_t from, uint64_t to) {
  std::vector<std::pair<uint64_t, std::string>> out;
  Status s = store.ScanLog(hub, from, to, [&](uint64_t pos, std::string_view v) {
    out.emplace_back(pos, std::string(v));
    return true;
  });
  EXPECT_TRUE(s.ok()) << s.message();
  return out;
}

class RocksStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    store_.reset();
    auto opened = Store::Open(StoreOptions{dir_.path(), false});
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    store_ = std::move(opened).value();
  }
  void CloseStore() { store_.reset(); }

  // Applies `e` to the view at the next position, and persists it like the applier does.
  ApplyResult Apply(const std::string& hub, const Entry& e) {
    uint64_t pos = ++positions_[hub];
    auto& view = views_[hub];
    if (!view) view = NewMemoryView();
    EXPECT_TRUE(store_->AppendLog(hub, pos, EncodeEntry(e)).ok());
    ApplyResult r = view->Apply(pos, e);
    Status s = store_->CommitApply(hub, pos, e, r);
    EXPECT_TRUE(s.ok()) << s.message();
    return r;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::map<std::string, std::unique_ptr<HubView>> views_;
  std::map<std::string, uint64_t> positions_;
};

TEST_F(RocksStoreTest, InstallingAViewStateReplacesEverythingTheHubHad) {
  Apply("chat", Open("old", "alice", {"g"}, true));
  Apply("chat", Open("keep-other-hub", "bob"));
  Apply("other", Open("x"));
  ViewState state;
  state.applied_position = 500;
  state.last_timestamp_ms = 123456;
  ConnectionState& c = state.connections.emplace_back();
  c.record.id = "new";
  c.record.user_id = "carol";
  c.record.groups = {"h"};
  c.record.reliable = true;
  c.acks = {{9, 480}, {3, 490}};
  state.user_groups = {{"carol", "h", kNever}};
  ASSERT_TRUE(store_->InstallViewState("chat", 77, state).ok());

  EXPECT_EQ(store_->Epoch("chat", 1).value(), 77u);
  EXPECT_EQ(store_->AppliedPosition("chat").value(), 500u);
  EXPECT_EQ(store_->FirstLogPosition("chat").value(), 0u);  // the old log is gone
  EXPECT_EQ(store_->LogBytes("chat"), 0u);
  auto loaded = store_->LoadViewState("chat");
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->last_timestamp_ms, 123456);
  ASSERT_EQ(loaded->connections.size(), 1u);
  EXPECT_EQ(loaded->connections[0].record.id, "new");
  EXPECT_EQ(loaded->connections[0].record.groups, std::set<std::string>({"h"}));
  // ackIds come back in arrival order, not id order.
  EXPECT_EQ(loaded->connections[0].acks, (std::vector<AckRecord>{{9, 480}, {3, 490}}));
  EXPECT_EQ(loaded->user_groups, state.user_groups);
  // Another hub is untouched.
  EXPECT_EQ(LoadAll(*store_, "other").size(), 1u);
  // And it survives a reopen.
  Reopen();
  EXPECT_EQ(store_->LoadViewState("chat")->connections.size(), 1u);
}

TEST_F(RocksStoreTest, EveryValidNameComesBackExactAfterARestart) {
  // Names may hold every byte the validators (base/names.h) let through: printable ASCII,
  // multi-byte UTF-8, and names that are prefixes of each other (which a key that lost its
  // separator would mix up). Control characters, NUL among them, never get here.
  std::string ascii;
  for (int b = 0x20; b < 0x7f; ++b) ascii.push_back(static_cast<char>(b));
  const std::vector<std::string> names = {
      ascii,   "u",    "u ", "u u", "\xc3\xbc", "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x98\x80",
      "a%00b", "a\\0b"};
  ViewState state;
  state.applied_position = 9;
  for (size_t i = 0; i < names.size(); ++i) {
    ConnectionState& c = state.connections.emplace_back();
    c.record.id = names[i] + "#" + std::to_string(i);
    c.record.user_id = names[i];
    c.record.groups = {names[i], names[(i + 1) % names.size()]};
    for (const auto& group : names) {
      state.user_groups.push_back({names[i], group, static_cast<int64_t>(1000 + i)});
    }
  }
  std::sort(state.connections.begin(), state.connections.end(),
            [](const auto& a, const auto& b) { return a.record.id < b.record.id; });
  std::sort(state.user_groups.begin(), state.user_groups.end(), [](const auto& a, const auto& b) {
    return std::tie(a.user_id, a.group) < std::tie(b.user_id, b.group);
  });
  ASSERT_TRUE(store_->InstallViewState("chat", 5, state).ok());
  Reopen();
  auto loaded = store_->LoadViewState("chat");
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded->user_groups, state.user_groups);
  ASSERT_EQ(loaded->connections.size(), state.connections.size());
  for (size_t i = 0; i < state.connections.size(); ++i) {
    EXPECT_EQ(loaded->connections[i].record.id, state.connections[i].record.id);
    EXPECT_EQ(loaded->connections[i].record.user_id, state.connections[i].record.user_id);
    EXPECT_EQ(loaded->connections[i].record.groups, state.connections[i].record.groups);
  }
}

// --- the log ------------------------------------------------------------------------------

TEST_F(RocksStoreTest, EmptyLogHasNoPositions) {
  EXPECT_EQ(store_->FirstLogPosition("chat").value(), 0u);
  EXPECT_EQ(store_->LastLogPosition("chat").value(), 0u);
  EXPECT_TRUE(Scan(*store_, "chat", 1, UINT64_MAX).empty());
  EXPECT_EQ(store_->LogBytes("chat"), 0u);
  EXPECT_EQ(store_->AppliedPosition("chat").value(), 0u);
  EXPECT_TRUE(store_->Hubs().value().empty());
}

TEST_F(RocksStoreTest, AppendedEntriesScanInOrderPerHub) {
  for (uint64_t i = 1; i <= 5; ++i) {
    ASSERT_TRUE(store_->AppendLog("a", i, "a" + std::to_string(i)).ok());
    ASSERT_TRUE(store_->AppendLog("b", 10 + i, "b" + std::to_string(i)).ok());
  }
  // Hub names that share a prefix must not see each other's entries.
  ASSERT_TRUE(store_->AppendLog("ab", 7, "ab7").ok());

  EXPECT_EQ(store_->FirstLogPosition("a").value(), 1u);
  EXPECT_EQ(store_->LastLogPosition("a").value(), 5u);
  EXPECT_EQ(store_->FirstLogPosition("b").value(), 11u);
  EXPECT_EQ(store_->LastLogPosition("b").value(), 15u);
  EXPECT_EQ(store_->FirstLogPosition("ab").value(), 7u);
  EXPECT_EQ(store_->LastLogPosition("ab").value(), 7u);
  EXPECT_EQ(store_->FirstLogPosition("c").value(), 0u);
  EXPECT_EQ(store_->LastLogPosition("c").value(), 0u);

  auto a = Scan(*store_, "a", 1, UINT64_MAX);
  ASSERT_EQ(a.size(), 5u);
  for (uint64_t i = 1; i <= 5; ++i) {
    EXPECT_EQ(a[i - 1].first, i);
    EXPECT_EQ(a[i - 1].second, "a" + std::to_string(i));
  }
  auto b = Scan(*store_, "b", 12, 14);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b.front(), std::make_pair(uint64_t{12}, std::string("b2")));
  EXPECT_EQ(b.back(), std::make_pair(uint64_t{14}, std::string("b4")));
  EXPECT_EQ(Scan(*store_, "ab", 1, 100).size(), 1u);
}

TEST_F(RocksStoreTest, ScanStopsWhenTheCallbackReturnsFalse) {
  for (uint64_t i = 1; i <= 5; ++i) ASSERT_TRUE(store_->AppendLog("a", i, "x").ok());
  std::vector<uint64_t> seen;
  ASSERT_TRUE(store_
                  ->ScanLog("a", 2, 5,
                            [&](uint64_t pos, std::string_view) {
                              seen.push_back(pos);
                              return pos < 3;
                            })
                  .ok());
  EXPECT_EQ(seen, (std::vector<uint64_t>{2, 3}));
}

TEST_F(RocksStoreTest, PositionsOrderNumericallyNotLexically) {
  for (uint64_t pos : {uint64_t{1}, uint64_t{9}, uint64_t{10}, uint64_t{256}, uint64_t{1} << 40}) {
    ASSERT_TRUE(store_->AppendLog("a", pos, std::to_string(pos)).ok());
  }
  std::vector<uint64_t> seen;
  for (auto& [pos, v] : Scan(*store_, "a", 0, UINT64_MAX)) seen.push_back(pos);
  EXPECT_EQ(seen, (std::vector<uint64_t>{1, 9, 10, 256, uint64_t{1} << 40}));
  EXPECT_EQ(store_->LastLogPosition("a").value(), uint64_t{1} << 40);
}

TEST_F(RocksStoreTest, LogBytesCountsEachAppendedEntryOnce) {
  ASSERT_TRUE(store_->AppendLog("a", 1, "abc").ok());
  EXPECT_EQ(store_->LogBytes("a"), 3u);
  ASSERT_TRUE(store_->AppendLog("a", 2, "defgh").ok());
  EXPECT_EQ(store_->LogBytes("a"), 8u);
}

TEST_F(RocksStoreTest, LogBytesCountsAppendsAfterAReopenOnce) {
  ASSERT_TRUE(store_->AppendLog("a", 1, "abc").ok());
  Reopen();
  ASSERT_TRUE(store_->AppendLog("a", 2, "defgh").ok());
  EXPECT_EQ(store_->LogBytes("a"), 8u);
}

TEST_F(RocksStoreTest, TrimDropsEntriesBelowThePositionAndAccountsTheirBytes) {
  EXPECT_EQ(store_->LogBytes("a"), 0u);  // counter seeded before the first append
  EXPECT_EQ(store_->LogBytes("b"), 0u);
  for (uint64_t i = 1; i <= 10; ++i) {
    ASSERT_TRUE(store_->AppendLog("a", i, std::string(i, 'x')).ok());
    ASSERT_TRUE(store_->AppendLog("b", i, std::string(100, 'y')).ok());
  }
  EXPECT_EQ(store_->LogBytes("a"), 55u);
  EXPECT_EQ(store_->LogBytes("b"), 1000u);

  ASSERT_TRUE(store_->TrimLogBefore("a", 5).ok());
  EXPECT_EQ(store_->FirstLogPosition("a").value(), 5u);
  EXPECT_EQ(store_->LastLogPosition("a").value(), 10u);
  EXPECT_EQ(store_->LogBytes("a"), 55u - (1 + 2 + 3 + 4));
  EXPECT_EQ(Scan(*store_, "a", 1, 4).size(), 0u);
  EXPECT_EQ(Scan(*store_, "a", 1, 10).size(), 6u);
  // The other hub is untouched.
  EXPECT_EQ(store_->FirstLogPosition("b").value(), 1u);
  EXPECT_EQ(store_->LogBytes("b"), 1000u);

  // Trimming below the first position is a no-op; trimming past the end empties the log.
  ASSERT_TRUE(store_->TrimLogBefore("a", 3).ok());
  EXPECT_EQ(store_->FirstLogPosition("a").value(), 5u);
  EXPECT_EQ(store_->LogBytes("a"), 45u);
  ASSERT_TRUE(store_->TrimLogBefore("a", 11).ok());
  EXPECT_EQ(store_->FirstLogPosition("a").value(), 0u);
  EXPECT_EQ(store_->LastLogPosition("a").value(), 0u);
  EXPECT_EQ(store_->LogBytes("a"), 0u);

  // The count survives a reopen (seeded from what is on disk).
  ASSERT_TRUE(store_->TrimLogBefore("b", 4).ok());
  Reopen();
  EXPECT_EQ(store_->LogBytes("a"), 0u);
  EXPECT_EQ(store_->LogBytes("b"), 700u);
  EXPECT_EQ(store_->FirstLogPosition("b").value(), 4u);
}

TEST_F(RocksStoreTest, TrimAlsoDropsTheOutcomesOfTrimmedEntries) {
  Apply("chat", Open("c1"));
  Apply("chat", ClientJoin("c1", "g", 1));  // no permission: Forbidden, at position 2
  Apply("chat", SendToAll("x"));
  ASSERT_EQ(store_->Outcome("chat", 2).value(), StatusCode::kForbidden);
  ASSERT_TRUE(store_->TrimLogBefore("chat", 3).ok());
  EXPECT_EQ(store_->Outcome("chat", 2).value(), StatusCode::kOk);
  CloseStore();
  RawDb raw(dir_.path());
  ASSERT_TRUE(raw.ok());
  EXPECT_TRUE(raw.Keys("outcome").empty());
}

// --- the view -----------------------------------------------------------------------------

TEST_F(RocksStoreTest, CommitApplyPersistsRecordsMembershipAcksAndAppliedPosition) {
  const std::vector<std::string> roles = {"webpubsub.joinLeaveGroup"};
  Apply("chat", Open("c1", "alice", {"g1"}, /*reliable=*/true, roles));
  Apply("chat", Open("c2"));
  Apply("chat", ClientJoin("c1", "g2", 7));
  Apply("chat", ClientJoin("c1", "g3", 8));
  Apply("chat", SendToAll("m1"));
  Apply("chat", SendToAll("m2"));
  Apply("chat", CheckpointOf({{"c1", 1}}));
  Entry grant;
  grant.kind = EntryKind::kGrant;
  grant.target = "c2";
  grant.permission = Permission::kSendToGroup;
  grant.permission_target = "g9";
  Apply("chat", grant);
  Apply("other", Open("x1", "zed", {"gx"}));

  EXPECT_EQ(store_->AppliedPosition("chat").value(), 8u);
  EXPECT_EQ(store_->AppliedPosition("other").value(), 1u);

  auto loaded = LoadAll(*store_, "chat");
  ASSERT_EQ(loaded.size(), 2u);
  const Loaded& c1 = loaded.at("c1");
  auto view_c1 = views_["chat"]->GetConnection("c1");
  ASSERT_TRUE(view_c1.has_value());
  EXPECT_EQ(c1.record.user_id, std::optional<std::string>("alice"));
  EXPECT_TRUE(c1.record.reliable);
  EXPECT_EQ(c1.record.node_id, "node-a");
  EXPECT_EQ(c1.record.created_position, 1u);
  EXPECT_EQ(c1.record.groups, (std::set<std::string>{"g1", "g2", "g3"}));
  EXPECT_EQ(c1.record.permissions.roles(), roles);
  // The checkpoint touched the record: its count and checkpoints are the view's.
  EXPECT_EQ(c1.record.seq, 2u);
  EXPECT_EQ(c1.record.acked, 1u);
  EXPECT_EQ(c1.record.checkpoints, view_c1->checkpoints);
  EXPECT_EQ(c1.acks, (std::vector<uint64_t>{7, 8}));

  const Loaded& c2 = loaded.at("c2");
  EXPECT_FALSE(c2.record.user_id.has_value());
  EXPECT_TRUE(c2.record.groups.empty());
  EXPECT_TRUE(c2.acks.empty());
  EXPECT_TRUE(c2.record.permissions.Allowed(Permission::kSendToGroup, "g9"));
  EXPECT_FALSE(c2.record.permissions.Allowed(Permission::kSendToGroup, "g8"));

  auto other = LoadAll(*store_, "other");
  ASSERT_EQ(other.size(), 1u);
  EXPECT_EQ(other.begin()->first, "x1");

  CloseStore();
  RawDb raw(dir_.path());
  ASSERT_TRUE(raw.ok());
  std::set<std::string> members;
  for (auto& k : raw.Keys("members")) members.insert(k);
  EXPECT_EQ(members,
            (std::set<std::string>{Key({"chat", "g1", "c1"}), Key({"chat", "g2", "c1"}),
                                   Key({"chat", "g3", "c1"}), Key({"other", "gx", "x1"})}));
}

TEST_F(RocksStoreTest, ALeftGroupLeavesTheRecordAndTheMembersIndex) {
  Apply("chat", Open("c1", std::nullopt, {"g1", "g2"}));
  Entry remove;
  remove.kind = EntryKind::kRemoveFromGroups;
  remove.scope = Scope::kConnection;
  remove.target = "c1";
  remove.groups = {"g1"};
  Apply("chat", remove);
  auto loaded = LoadAll(*store_, "chat");
  EXPECT_EQ(loaded.at("c1").record.groups, (std::set<std::string>{"g2"}));
  CloseStore();
  RawDb raw(dir_.path());
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw.Keys("members"), (std::vector<std::string>{Key({"chat", "g2", "c1"})}));
}

TEST_F(RocksStoreTest, AClosedConnectionsRecordMembershipAndAcksAreGone) {
  const std::vector<std::string> roles = {"webpubsub.joinLeaveGroup"};
  Apply("chat", Open("c1", "alice", {"g1"}, false, roles));
  Apply("chat", Open("c10", "alice", {"g1"}, false, roles));  // id with c1 as a prefix
  Apply("chat", ClientJoin("c1", "g2", 1));
  Apply("chat", ClientJoin("c1", "g3", 2));
  Apply("chat", ClientJoin("c10", "g2", 1));
  ApplyResult closed = Apply("chat", Close("c1"));
  EXPECT_EQ(closed.closed, (std::vector<std::string>{"c1"}));

  auto loaded = LoadAll(*store_, "chat");
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded.begin()->first, "c10");
  EXPECT_EQ(loaded.at("c10").acks, (std::vector<uint64_t>{1}));

  // REST close by user.
  Entry close_user;
  close_user.kind = EntryKind::kCloseConnections;
  close_user.scope = Scope::kUser;
  close_user.target = "alice";
  Apply("chat", close_user);
  EXPECT_TRUE(LoadAll(*store_, "chat").empty());

  CloseStore();
  RawDb raw(dir_.path());
  ASSERT_TRUE(raw.ok());
  EXPECT_TRUE(raw.Keys("conns").empty());
  EXPECT_TRUE(raw.Keys("members").empty());
  EXPECT_TRUE(raw.Keys("acks").empty());
}

TEST_F(RocksStoreTest, AckHistoryForgetsTheOldestAckIdOnDiskToo) {
  Apply("chat", Open("c1", std::nullopt, {}, false, {"webpubsub.joinLeaveGroup"}));
  // The view remembers 4096 ackIds; one more drops the oldest.
  for (uint64_t ack = 1; ack <= 4097; ++ack) {
    Entry e = ClientJoin("c1", "g", ack);
    uint64_t pos = ++positions_["chat"];
    ApplyResult r = views_["chat"]->Apply(pos, e);
    ASSERT_TRUE(store_->CommitApply("chat", pos, e, r).ok());
  }
  auto loaded = LoadAll(*store_, "chat");
  const auto& acks = loaded.at("c1").acks;
  ASSERT_EQ(acks.size(), 4096u);
  EXPECT_EQ(acks.front(), 2u);
  EXPECT_EQ(acks.back(), 4097u);
}

TEST_F(RocksStoreTest, OutcomeIsStoredOnlyForEntriesThatHadNoEffect) {
  Apply("chat", Open("c1"));                         // 1 ok
  Apply("chat", ClientJoin("c1", "g", 1));           // 2 forbidden
  Apply("chat", ClientSendToGroup("c1", "g", 2));    // 3 forbidden
  Apply("chat", SendToAll("x"));                     // 4 ok
  Apply("chat", ClientSendToGroup("gone", "g", 3));  // 5 origin gone: not found
  Apply("chat", Open("c1"));                         // 6 id in use: invalid argument
  Entry grant;
  grant.kind = EntryKind::kGrant;
  grant.target = "c1";
  grant.permission = Permission::kSendToGroup;
  grant.permission_target = "g";
  Apply("chat", grant);                            // 7 ok
  Apply("chat", ClientSendToGroup("c1", "g", 3));  // 8 ok
  Apply("chat", ClientSendToGroup("c1", "g", 3));  // 9 duplicate

  EXPECT_EQ(store_->Outcome("chat", 1).value(), StatusCode::kOk);
  EXPECT_EQ(store_->Outcome("chat", 2).value(), StatusCode::kForbidden);
  EXPECT_EQ(store_->Outcome("chat", 3).value(), StatusCode::kForbidden);
  EXPECT_EQ(store_->Outcome("chat", 4).value(), StatusCode::kOk);
  EXPECT_EQ(store_->Outcome("chat", 5).value(), StatusCode::kNotFound);
  EXPECT_EQ(store_->Outcome("chat", 6).value(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Outcome("chat", 7).value(), StatusCode::kOk);
  EXPECT_EQ(store_->Outcome("chat", 8).value(), StatusCode::kOk);
  EXPECT_EQ(store_->Outcome("chat", 9).value(), StatusCode::kDuplicate);
  EXPECT_EQ(store_->Outcome("other", 2).value(), StatusCode::kOk);

  CloseStore();
  RawDb raw(dir_.path());
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(raw.Keys("outcome"),
            (std::vector<std::string>{PosKey("chat", 2), PosKey("chat", 3), PosKey("chat", 5),
                                      PosKey("chat", 6), PosKey("chat", 9)}));
}

// --- epochs, reopen, format and lock ------------------------------------------------------

TEST_F(RocksStoreTest, EpochIsCreatedOnceAndStableAcrossReopen) {
  auto first = store_->Epoch("chat", 111);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, 111u);
  auto again = store_->Epoch("chat", 222);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 111u);
  auto other = store_->Epoch("other", 333);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(*other, 333u);
  auto hubs = store_->Hubs().value();
  EXPECT_EQ(std::set<std::string>(hubs.begin(), hubs.end()),
            (std::set<std::string>{"chat", "other"}));

  Reopen();
  auto reopened = store_->Epoch("chat", 444);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(*reopened, 111u);
  hubs = store_->Hubs().value();
  EXPECT_EQ(std::set<std::string>(hubs.begin(), hubs.end()),
            (std::set<std::string>{"chat", "other"}));
}

// A store whose table files cannot be read answers with errors, never with "nothing there":
// an empty hub list, a first/last log position of 0 or an OK outcome would each be taken for
// the truth (hubs missing after a restart, a log replayed from the wrong place).
TEST_F(RocksStoreTest, ReadErrorsAreReportedNotTakenForAnEmptyStore) {
  // The format marker goes into table files of its own, which stay readable (Open reads it).
  auto tables = [&] {
    std::set<fs::path> out;
    for (const auto& f : fs::directory_iterator(dir_.path())) {
      if (f.path().extension() == ".sst") out.insert(f.path());
    }
    return out;
  };
  CloseStore();
  {
    RawDb raw(dir_.path());
    ASSERT_TRUE(raw.ok());
    raw.FlushAll();
  }
  const std::set<fs::path> readable = tables();
  Reopen();
  ASSERT_TRUE(store_->Epoch("chat", 7).ok());
  ASSERT_TRUE(store_->AppendLog("chat", 1, "one").ok());
  ASSERT_TRUE(store_->AppendLog("chat", 2, "two").ok());
  CloseStore();
  {
    RawDb raw(dir_.path());
    ASSERT_TRUE(raw.ok());
    raw.Put("outcome", PosKey("chat", 1), std::string(1, '\x05'));
    raw.FlushAll();
  }
  // Flip bytes inside the first data block of every newer table file (its checksum fails;
  // the index and footer at the end stay intact, so the store still opens).
  int corrupted = 0;
  for (const fs::path& path : tables()) {
    if (readable.count(path) != 0) continue;
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(4);
    file.write("\xff\x00\xff\x00\xff\x00\xff\x00", 8);
    ++corrupted;
  }
  ASSERT_GE(corrupted, 3) << "meta, log and outcome should each have a new table file";
  Reopen();
  EXPECT_FALSE(store_->Hubs().ok());
  EXPECT_FALSE(store_->FirstLogPosition("chat").ok());
  EXPECT_FALSE(store_->LastLogPosition("chat").ok());
  EXPECT_FALSE(store_->Outcome("chat", 1).ok());
  EXPECT_FALSE(store_->TrimLogBefore("chat", 2).ok());
  EXPECT_FALSE(store_->ScanLog("chat", 1, 2, [](uint64_t, std::string_view) { return true; }).ok());
}

TEST_F(RocksStoreTest, ReopenAfterCloseKeepsEverything) {
  ASSERT_TRUE(store_->Epoch("chat", 42).ok());
  const std::vector<std::string> roles = {"webpubsub.joinLeaveGroup"};
  Apply("chat", Open("c1", "alice", {"g1"}, true, roles));
  Apply("chat", Open("c2", "bob"));
  Apply("chat", ClientJoin("c1", "g2", 5));
  Apply("chat", ClientJoin("c2", "g2", 6));  // forbidden
  Apply("chat", SendToAll("hello"));
  Apply("chat", CheckpointOf({{"c1", 1}}));
  Apply("chat", Close("c2"));
  auto before = LoadAll(*store_, "chat");
  auto log_before = Scan(*store_, "chat", 0, UINT64_MAX);
  uint64_t bytes_before = 0;
  for (const auto& [pos, bytes] : log_before) bytes_before += bytes.size();

  Reopen();
  EXPECT_EQ(*store_->Epoch("chat", 1), 42u);
  EXPECT_EQ(store_->AppliedPosition("chat").value(), 7u);
  EXPECT_EQ(store_->FirstLogPosition("chat").value(), 1u);
  EXPECT_EQ(store_->LastLogPosition("chat").value(), 7u);
  EXPECT_EQ(Scan(*store_, "chat", 0, UINT64_MAX), log_before);
  EXPECT_EQ(store_->LogBytes("chat"), bytes_before);
  EXPECT_EQ(store_->Outcome("chat", 4).value(), StatusCode::kForbidden);
  auto after = LoadAll(*store_, "chat");
  ASSERT_EQ(after.size(), before.size());
  ASSERT_EQ(after.size(), 1u);
  const auto& a = after.at("c1");
  const auto& b = before.at("c1");
  EXPECT_EQ(a.record.groups, b.record.groups);
  EXPECT_EQ(a.record.checkpoints, b.record.checkpoints);
  EXPECT_EQ(a.record.seq, b.record.seq);
  EXPECT_EQ(a.record.acked, b.record.acked);
  EXPECT_EQ(a.record.user_id, b.record.user_id);
  EXPECT_EQ(a.acks, (std::vector<uint64_t>{5}));
  // The log decodes back into the entries that were appended.
  auto decoded = DecodeEntry(log_before[2].second);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->kind, EntryKind::kAddToGroups);
  EXPECT_EQ(decoded->groups, (std::vector<std::string>{"g2"}));
}

TEST_F(RocksStoreTest, SyncWritesStoreIsUsableAndDurable) {
  CloseStore();
  {
    auto opened = Store::Open(StoreOptions{dir_.path(), true});
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    ASSERT_TRUE((*opened)->AppendLog("a", 1, "x").ok());
  }
  Reopen();
  EXPECT_EQ(store_->LastLogPosition("a").value(), 1u);
}

TEST_F(RocksStoreTest, NewerFormatMarkerIsRefusedOnOpen) {
  CloseStore();
  {
    RawDb raw(dir_.path());
    ASSERT_TRUE(raw.ok());
    EXPECT_EQ(raw.Keys("meta"), (std::vector<std::string>{"format"}));
    raw.Put("meta", "format", "99");
  }
  auto opened = Store::Open(StoreOptions{dir_.path(), false});
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(opened.status().message().find("newer"), std::string::npos)
      << opened.status().message();
}

TEST_F(RocksStoreTest, GarbageFormatMarkerIsRefusedOnOpen) {
  CloseStore();
  {
    RawDb raw(dir_.path());
    ASSERT_TRUE(raw.ok());
    raw.Put("meta", "format", "banana");
  }
  auto opened = Store::Open(StoreOptions{dir_.path(), false});
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), StatusCode::kInvalidArgument);
}

TEST_F(RocksStoreTest, SecondOpenOfAnOpenPathFailsUnavailable) {
  auto second = Store::Open(StoreOptions{dir_.path(), false});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable) << second.status().message();
  // The first store still works.
  EXPECT_TRUE(store_->AppendLog("a", 1, "x").ok());
  CloseStore();
  auto third = Store::Open(StoreOptions{dir_.path(), false});
  EXPECT_TRUE(third.ok()) << third.status().message();
}

}  // namespace
}  // namespace hubcast::storage
