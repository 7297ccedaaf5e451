// Tests of storage/replay.h: the recovery arithmetic. A scripted (and a randomised) sequence
// of entries is applied through a MemoryView and persisted through a real RocksDB Store exactly
// as the applier does (AppendLog with EncodeEntry, HubView::Apply, Store::CommitApply). Then
// ReplayConnection, started from every checkpoint the view ever held, must number every
// message exactly as the view did (ApplyResult::sequence_ids), for every `after_seq` and
// every `to`, with no gaps; stop at the connection's close; and refuse (kNotFound) when the
// entries it needs have left the log.
#include "storage/replay.h"

#include "base/status.h"
#include "storage/entry.h"
#include "storage/entry_codec.h"
#include "storage/filter.h"
#include "storage/hub_view.h"
#include "storage/permissions.h"
#include "storage/store.h"

#include <gtest/gtest.h>

#include "tests/unit/testing/entries.h"
#include "tests/unit/testing/test_util.h"
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace hubcast::storage {
namespace {

using hubcast::testing::Close;
using hubcast::testing::Open;
using hubcast::testing::Permit;

using hubcast::testing::TempDir;

namespace fs = std::filesystem;

constexpr const char* kHub = "chat";
constexpr const char* kJoinAny = "webpubsub.joinLeaveGroup";
constexpr const char* kSendAny = "webpubsub.sendToGroup";

std::shared_ptr<const Filter> MakeFilter(std::string_view text) {
  auto parsed = Filter::Parse(text);
  EXPECT_TRUE(parsed.ok()) << text << ": " << parsed.status().message();
  return parsed.ok() ? parsed.value() : nullptr;
}

// --- entry builders -----------------------------------------------------------------------

Entry Send(Scope scope, std::string target, std::string data,
           std::vector<std::string> excluded = {}, std::shared_ptr<const Filter> filter = {}) {
  Entry e;
  e.kind = EntryKind::kSend;
  e.scope = scope;
  e.target = std::move(target);
  e.data = std::move(data);
  e.excluded = std::move(excluded);
  e.filter = std::move(filter);
  return e;
}

Entry ClientSend(const std::string& origin, const std::string& group, uint64_t ack, bool no_echo,
                 std::string data) {
  Entry e = Send(Scope::kGroup, group, std::move(data));
  e.origin_connection = origin;
  e.ack_id = ack;
  e.required_permission = Permission::kSendToGroup;
  e.permission_target = group;
  e.from = MessageFrom::kGroup;
  e.no_echo = no_echo;
  return e;
}

Entry Membership(EntryKind kind, Scope scope, std::string target, std::vector<std::string> groups,
                 std::shared_ptr<const Filter> filter = {}) {
  Entry e;
  e.kind = kind;
  e.scope = scope;
  e.target = std::move(target);
  e.groups = std::move(groups);
  e.filter = std::move(filter);
  return e;
}

Entry ClientMembership(EntryKind kind, const std::string& origin, const std::string& group,
                       uint64_t ack) {
  Entry e = Membership(kind, Scope::kConnection, origin, {group});
  e.origin_connection = origin;
  e.ack_id = ack;
  e.required_permission = Permission::kJoinLeaveGroup;
  e.permission_target = group;
  return e;
}

Entry CloseConnections(Scope scope, std::string target, std::vector<std::string> excluded = {},
                       std::shared_ptr<const Filter> filter = {}) {
  Entry e;
  e.kind = EntryKind::kCloseConnections;
  e.scope = scope;
  e.target = std::move(target);
  e.excluded = std::move(excluded);
  e.filter = std::move(filter);
  e.reason = "closed by the service";
  return e;
}

Entry CheckpointOf(std::vector<std::pair<std::string, uint64_t>> acks) {
  Entry e;
  e.kind = EntryKind::kCheckpoint;
  e.acks = std::move(acks);
  return e;
}

// --- the harness --------------------------------------------------------------------------

struct Numbered {
  uint64_t seq;
  uint64_t position;
  bool operator==(const Numbered&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Numbered& n) {
  return os << "(seq " << n.seq << " @" << n.position << ")";
}

// What the view held for one reliable connection after some position.
struct ConnState {
  uint64_t seq = 0;
  std::set<std::string> groups;
};

class ReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Store::Open(StoreOptions{dir_.path(), false});
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    store_ = std::move(opened).value();
    snapshots_.emplace_back();  // position 0
  }

  // Applies `e` at the next position through the view and the store, and records what the
  // view numbered and held. Entries without a timestamp get one that grows with the position.
  ApplyResult Apply(Entry e) {
    uint64_t pos = ++position_;
    if (e.timestamp_ms == 0) e.timestamp_ms = 1'700'000'000'000 + static_cast<int64_t>(pos);
    EXPECT_TRUE(store_->AppendLog(kHub, pos, EncodeEntry(e)).ok());
    ApplyResult r = view_->Apply(pos, e);
    Status committed = store_->CommitApply(kHub, pos, e, r);
    EXPECT_TRUE(committed.ok()) << committed.message();
    data_[pos] = e.data;
    outcomes_[pos] = r.status.code();
    EXPECT_EQ(r.recipients.size(), r.sequence_ids.size());
    for (size_t i = 0; i < r.recipients.size() && i < r.sequence_ids.size(); ++i) {
      const ConnectionRecord* c = r.recipients[i];
      if (!c->reliable) {
        EXPECT_EQ(r.sequence_ids[i], 0u);
        continue;
      }
      auto& list = numbered_[c->id];
      // The view itself numbers without gaps.
      EXPECT_EQ(r.sequence_ids[i], list.size() + 1) << c->id << " at " << pos;
      list.push_back({r.sequence_ids[i], pos});
    }
    for (const auto& id : r.closed) {
      if (records_.count(id) && !closed_at_.count(id)) closed_at_[id] = pos;
    }
    std::map<std::string, ConnState> snap;
    for (const ConnectionRecord& c : view_->AllConnections()) {
      if (!c.reliable) continue;
      snap[c.id] = {c.seq, c.groups};
      if (!records_.count(c.id)) records_[c.id] = c;
      for (const Checkpoint& cp : c.checkpoints) {
        auto& seen = checkpoints_[c.id];
        if (std::find(seen.begin(), seen.end(), cp) == seen.end()) seen.push_back(cp);
      }
    }
    snapshots_.push_back(std::move(snap));
    return r;
  }

  Result<ReplayResult> Replay(const std::string& id, const Checkpoint& from, uint64_t to,
                              uint64_t after_seq, std::vector<Numbered>* out) {
    return ReplayConnection(*store_, kHub, records_.at(id), from, to, after_seq,
                            [&](uint64_t seq, uint64_t pos, const Entry& e) {
                              out->push_back({seq, pos});
                              EXPECT_EQ(e.kind, EntryKind::kSend) << "position " << pos;
                              EXPECT_EQ(e.data, data_[pos]) << "position " << pos;
                            });
  }

  // Replays `id` from `cp` to `to` for `after_seq` and checks it against what the view did.
  void CheckOne(const std::string& id, const Checkpoint& cp, uint64_t to, uint64_t after_seq) {
    SCOPED_TRACE(::testing::Message() << id << " from checkpoint (" << cp.position << ", " << cp.seq
                                      << ") to " << to << " after " << after_seq);
    std::vector<Numbered> got;
    auto result = Replay(id, cp, to, after_seq, &got);
    ASSERT_TRUE(result.ok()) << result.status().message();

    auto closed = closed_at_.find(id);
    bool closed_in_range =
        closed != closed_at_.end() && closed->second > cp.position && closed->second <= to;
    uint64_t state_at = closed_in_range ? closed->second - 1 : to;
    const ConnState& want = snapshots_.at(state_at).at(id);

    std::vector<Numbered> expected;
    for (const Numbered& n : numbered_[id]) {
      if (n.position > cp.position && n.position <= state_at && n.seq > after_seq) {
        expected.push_back(n);
      }
    }
    EXPECT_EQ(got, expected);
    EXPECT_EQ(result->seq, want.seq);
    EXPECT_EQ(result->closed, closed_in_range);
    EXPECT_EQ(result->groups, want.groups);
    // No gaps: the numbers run on from max(after_seq, checkpoint seq) to the final count.
    uint64_t next = std::max(after_seq, cp.seq) + 1;
    for (const Numbered& n : got) EXPECT_EQ(n.seq, next++);
    if (!got.empty()) {
      EXPECT_EQ(got.back().seq, result->seq);
    }
  }

  uint64_t SeqAt(const std::string& id, uint64_t to) {
    auto closed = closed_at_.find(id);
    uint64_t at = closed != closed_at_.end() && closed->second <= to ? closed->second - 1 : to;
    return snapshots_.at(at).at(id).seq;
  }

  // Every checkpoint of every reliable connection, every `to` from the checkpoint to the end
  // of the log, every after_seq from the checkpoint's seq to one past the final count.
  size_t CheckEverything() {
    size_t checked = 0;
    for (const auto& [id, cps] : checkpoints_) {
      for (const Checkpoint& cp : cps) {
        for (uint64_t to = cp.position; to <= position_; ++to) {
          for (uint64_t after = cp.seq; after <= SeqAt(id, to) + 1; ++after) {
            CheckOne(id, cp, to, after);
            ++checked;
          }
        }
      }
    }
    return checked;
  }

  // Every checkpoint, to the head and to two random positions, each from the checkpoint's
  // seq and from one random after_seq (replays scan the store: keep the count modest).
  size_t CheckSampled(std::mt19937* rng) {
    size_t checked = 0;
    for (const auto& [id, cps] : checkpoints_) {
      for (const Checkpoint& cp : cps) {
        uint64_t span = position_ - cp.position + 1;
        for (uint64_t to :
             {position_, cp.position + (*rng)() % span, cp.position + (*rng)() % span}) {
          uint64_t last = SeqAt(id, to);
          CheckOne(id, cp, to, cp.seq);
          CheckOne(id, cp, to, cp.seq + (*rng)() % (last - cp.seq + 2));
          checked += 2;
        }
      }
    }
    return checked;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<HubView> view_ = NewMemoryView();
  uint64_t position_ = 0;
  std::map<uint64_t, std::string> data_;
  std::map<uint64_t, StatusCode> outcomes_;
  std::map<std::string, std::vector<Numbered>> numbered_;
  std::map<std::string, ConnectionRecord> records_;  // as opened (id, user, subprotocol)
  std::map<std::string, uint64_t> closed_at_;
  std::map<std::string, std::vector<Checkpoint>> checkpoints_;
  std::vector<std::map<std::string, ConnState>> snapshots_;  // by position
};

// The scripted history. Comments give each reliable connection's number after the entry.
class ReplayScript : public ReplayTest {
 protected:
  void SetUp() override {
    ReplayTest::SetUp();
    Script();
  }

  uint64_t Expect(const ApplyResult& r, StatusCode code) {
    EXPECT_EQ(r.status.code(), code) << "position " << position_ << ": " << r.status.message();
    return position_;
  }

  void Script() {
    // r1 may join and send anywhere; r2 may do nothing on its own; r3 anonymous; p1 is not
    // reliable (its deliveries are not numbered).
    Expect(Apply(Open("r1", "alice", {"g1"}, true, {kJoinAny, kSendAny})), StatusCode::kOk);  // 1
    Expect(Apply(Open("r2", "bob", {}, true)), StatusCode::kOk);                              // 2
    Expect(Apply(Open("p1", "alice", {"g1"}, false)), StatusCode::kOk);                       // 3
    Apply(Send(Scope::kAll, "", "to all"));     // 4  r1:1 r2:1
    Apply(Send(Scope::kGroup, "g1", "to g1"));  // 5  r1:2
    forbidden_join_ = Expect(Apply(ClientMembership(EntryKind::kAddToGroups, "r2", "g1", 1)),
                             StatusCode::kForbidden);  // 6
    Expect(Apply(ClientMembership(EntryKind::kAddToGroups, "r1", "g2", 1)),
           StatusCode::kOk);                                                  // 7  r1 joins g2
    Apply(Membership(EntryKind::kAddToGroups, Scope::kUser, "bob", {"g2"}));  // 8 r2 joins g2
    Apply(Send(Scope::kGroup, "g2", "g2 but r1", {"r1"}));                    // 9  r2:2
    Apply(Send(Scope::kUser, "alice", "to alice"));                           // 10 r1:3
    Apply(Send(Scope::kConnection, "r2", "to r2"));                           // 11 r2:3
    Expect(Apply(ClientSend("r1", "g2", 2, /*no_echo=*/true, "r1 no echo")),
           StatusCode::kOk);  // 12 r2:4
    forbidden_send_ = Expect(Apply(ClientSend("r2", "g2", 2, false, "r2 forbidden")),
                             StatusCode::kForbidden);                                // 13
    Expect(Apply(Open("r3", std::nullopt, {}, true, {kSendAny})), StatusCode::kOk);  // 14
    Apply(CheckpointOf({{"r1", 2}, {"r2", 1}}));                                     // 15
    Apply(Membership(EntryKind::kAddToGroups, Scope::kAll, "", {"g3"},
                     MakeFilter("userId eq 'bob' or userId eq null")));  // 16 r2, r3 join g3
    Apply(Send(Scope::kAll, "", "filtered", {}, MakeFilter("'g3' in groups")));    // 17 r2:5 r3:1
    Apply(Permit(EntryKind::kGrant, "r2", Permission::kSendToGroup, "g3"));        // 18
    Expect(Apply(ClientSend("r2", "g3", 3, false, "r2 to g3")), StatusCode::kOk);  // 19 r2:6 r3:2
    Apply(Membership(EntryKind::kRemoveFromGroups, Scope::kConnection, "r1",
                     {}));                              // 20 r1 leaves all
    Apply(Send(Scope::kGroup, "g1", "g1 without r1"));  // 21 (p1 only)
    duplicate_ = Expect(Apply(ClientSend("r1", "g2", 1, false, "dup ack")),
                        StatusCode::kDuplicate);                              // 22
    Apply(Send(Scope::kAll, "", "all again"));                                // 23 r1:4 r2:7 r3:3
    Apply(CheckpointOf({{"r1", 4}, {"r3", 3}}));                              // 24
    Apply(Permit(EntryKind::kRevoke, "r2", Permission::kSendToGroup, "g3"));  // 25
    Expect(Apply(ClientSend("r2", "g3", 4, false, "revoked")), StatusCode::kForbidden);  // 26
    Apply(Close("r2"));                                                                  // 27
    Apply(Send(Scope::kAll, "", "after r2 left"));                                  // 28 r1:5 r3:4
    Apply(Send(Scope::kConnection, "nobody", "to nobody"));                         // 29
    Apply(Send(Scope::kAll, "", "by id", {}, MakeFilter("connectionId eq 'r1'")));  // 30 r1:6
    Apply(CloseConnections(Scope::kUser, "alice"));    // 31 r1, p1 closed
    Apply(Send(Scope::kAll, "", "after alice left"));  // 32 r3:5
    Apply(Membership(EntryKind::kAddToGroups, Scope::kConnection, "r3", {"g4"}));  // 33
    Apply(Send(Scope::kGroup, "g4", "to g4"));                                     // 34 r3:6
    Apply(CheckpointOf({{"r3", 6}}));                                              // 35
    Apply(Send(Scope::kAll, "", "last"));                                          // 36 r3:7
    Apply(CloseConnections(Scope::kAll, "", {"r3"}));  // 37 nobody else left
    Apply(Send(Scope::kAll, "", "really last"));       // 38 r3:8
  }

  uint64_t forbidden_join_ = 0;
  uint64_t forbidden_send_ = 0;
  uint64_t duplicate_ = 0;
};

TEST_F(ReplayScript, TheScriptNumbersWhatTheCommentsSay) {
  auto seqs = [&](const std::string& id) {
    std::vector<uint64_t> positions;
    for (const Numbered& n : numbered_[id]) positions.push_back(n.position);
    return positions;
  };
  EXPECT_EQ(seqs("r1"), (std::vector<uint64_t>{4, 5, 10, 23, 28, 30}));
  EXPECT_EQ(seqs("r2"), (std::vector<uint64_t>{4, 9, 11, 12, 17, 19, 23}));
  EXPECT_EQ(seqs("r3"), (std::vector<uint64_t>{17, 19, 23, 28, 32, 34, 36, 38}));
  EXPECT_EQ(closed_at_["r1"], 31u);
  EXPECT_EQ(closed_at_["r2"], 27u);
  EXPECT_FALSE(closed_at_.count("r3"));
  EXPECT_EQ(store_->Outcome(kHub, forbidden_join_).value(), StatusCode::kForbidden);
  EXPECT_EQ(store_->Outcome(kHub, forbidden_send_).value(), StatusCode::kForbidden);
  EXPECT_EQ(store_->Outcome(kHub, duplicate_).value(), StatusCode::kDuplicate);
  EXPECT_EQ(store_->Outcome(kHub, 12).value(), StatusCode::kOk);
  // r1 had checkpoints at its open, 15 and 24; r3 at its open, 24 and 35.
  EXPECT_GE(checkpoints_["r1"].size(), 3u);
  EXPECT_GE(checkpoints_["r3"].size(), 3u);
}

TEST_F(ReplayScript, ReplayFromEveryCheckpointNumbersExactlyAsTheViewDid) {
  size_t checked = CheckEverything();
  EXPECT_GT(checked, 500u);
}

TEST_F(ReplayScript, ReplayStopsAtTheConnectionsClose) {
  // r2 closed at 27; later sends to all (28, 32, ...) must not be counted for it.
  const Checkpoint& open = checkpoints_["r2"].front();
  std::vector<Numbered> got;
  auto r = Replay("r2", open, position_, 0, &got);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->closed);
  EXPECT_EQ(r->seq, 7u);
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got.back(), (Numbered{7, 23}));
  // Closed by a REST close-by-user entry.
  got.clear();
  r = Replay("r1", checkpoints_["r1"].front(), position_, 0, &got);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->closed);
  EXPECT_EQ(r->seq, 6u);
  EXPECT_EQ(got.back(), (Numbered{6, 30}));
}

TEST_F(ReplayScript, ReplayOfAClosedConnectionNeedsNoEntriesAfterTheClose) {
  // Replaying to beyond the end of the log is fine once the close is reached.
  std::vector<Numbered> got;
  auto r = Replay("r2", checkpoints_["r2"].front(), position_ + 100, 0, &got);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->closed);
  EXPECT_EQ(r->seq, 7u);
}

TEST_F(ReplayScript, ReplayBeyondTheEndOfTheLogIsRefused) {
  std::vector<Numbered> got;
  auto r = Replay("r3", checkpoints_["r3"].back(), position_ + 1, 0, &got);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
}

TEST_F(ReplayScript, ReplayToTheCheckpointItselfReadsNothing) {
  const Checkpoint cp = checkpoints_["r3"].back();
  ASSERT_TRUE(store_->TrimLogBefore(kHub, position_ + 1).ok());  // the whole log is gone
  std::vector<Numbered> got;
  auto r = Replay("r3", cp, cp.position, 0, &got);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->seq, cp.seq);
  EXPECT_EQ(r->groups, std::set<std::string>(cp.groups.begin(), cp.groups.end()));
  EXPECT_TRUE(got.empty());
}

TEST_F(ReplayScript, ATrimmedRangeMakesReplayFailInsteadOfSkipping) {
  const std::vector<Checkpoint> cps = checkpoints_["r3"];
  ASSERT_GE(cps.size(), 2u);
  const Checkpoint& open = cps.front();  // (14, 0)
  const Checkpoint& later = cps.back();  // (35, 6)
  ASSERT_LT(open.position + 1, later.position);

  // Everything after the checkpoint is still there: fine.
  ASSERT_TRUE(store_->TrimLogBefore(kHub, open.position + 1).ok());
  CheckOne("r3", open, position_, 0);

  // The entry right after the checkpoint is gone: refused, and nothing was numbered.
  ASSERT_TRUE(store_->TrimLogBefore(kHub, open.position + 2).ok());
  std::vector<Numbered> got;
  auto r = Replay("r3", open, position_, 0, &got);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(got.empty());

  // Well past the checkpoint (the messages themselves left): still refused.
  ASSERT_TRUE(store_->TrimLogBefore(kHub, 30).ok());
  got.clear();
  r = Replay("r3", open, position_, 5, &got);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(got.empty());

  // A newer checkpoint inside what is left still works.
  CheckOne("r3", later, position_, later.seq);
  CheckOne("r3", later, position_, 0);
}

TEST_F(ReplayScript, OutcomesAreWhatMakeReplaySkipEntriesWithoutEffect) {
  // Sanity check of the test itself: if the duplicate at 22 (a group send to g2 that r2 was a
  // member of) were counted, r2's numbers after it would be off by one.
  ASSERT_EQ(store_->Outcome(kHub, duplicate_).value(), StatusCode::kDuplicate);
  CheckOne("r2", checkpoints_["r2"].back(), position_, 0);
}

TEST_F(ReplayTest, AHoleInTheMiddleOfTheLogFailsReplay) {
  Apply(Open("r", "u", {}, true));    // 1
  Apply(Send(Scope::kAll, "", "a"));  // 2
  Apply(Send(Scope::kAll, "", "b"));  // 3
  Apply(Send(Scope::kAll, "", "c"));  // 4
  // Position 5 never stored; 6 is.
  ++position_;
  snapshots_.push_back(snapshots_.back());
  Apply(Send(Scope::kAll, "", "d"));  // 6 (view numbers it 4)
  std::vector<Numbered> got;
  auto r = Replay("r", checkpoints_["r"].front(), 6, 0, &got);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("5"), std::string::npos) << r.status().message();
  // Up to the hole it is fine.
  CheckOne("r", checkpoints_["r"].front(), 4, 0);
}

// Remembered user-group memberships (entry fields membership_ttl_seconds / expiring): the
// expiry sweep's removal only removes a membership that is still expired at the entry's own
// timestamp; a renewed one stays, and so do the user's connections in the group.
TEST_F(ReplayTest, AnExpiringRemovalOfARenewedMembershipKeepsTheNumbering) {
  const int64_t t0 = 1'700'000'000'000;
  Entry open = Open("r", "u", {}, true);
  open.timestamp_ms = t0;
  Apply(open);  // 1
  Entry remember = Membership(EntryKind::kAddToGroups, Scope::kUser, "u", {"g"});
  remember.membership_ttl_seconds = 60;
  remember.timestamp_ms = t0 + 1;
  Apply(remember);  // 2: r joins g; remembered until t0 + 60 s
  Entry renew = remember;
  renew.membership_ttl_seconds = 3600;
  renew.timestamp_ms = t0 + 30'000;
  Apply(renew);  // 3: remembered until t0 + 1 h
  // The sweep looked before the renewal and appended the removal; it applies after it.
  Entry expire = Membership(EntryKind::kRemoveFromGroups, Scope::kUser, "u", {"g"});
  expire.expiring = true;
  expire.timestamp_ms = t0 + 61'000;
  // 4: a no-op, recorded as one (kNotFound) so replay skips it
  ASSERT_EQ(Apply(expire).status.code(), StatusCode::kNotFound);
  ASSERT_EQ(view_->GetConnection("r")->groups, std::set<std::string>{"g"});
  Entry send = Send(Scope::kGroup, "g", "still a member");
  send.timestamp_ms = t0 + 62'000;
  Apply(send);  // 5: r:1
  ASSERT_EQ(numbered_["r"], (std::vector<Numbered>{{1, 5}}));
  CheckOne("r", checkpoints_["r"].front(), position_, 0);
}

TEST_F(ReplayTest, AnExpiringRemovalOfAnExpiredMembershipRemovesTheGroup) {
  const int64_t t0 = 1'700'000'000'000;
  Entry open = Open("r", "u", {}, true);
  open.timestamp_ms = t0;
  Apply(open);  // 1
  Entry remember = Membership(EntryKind::kAddToGroups, Scope::kUser, "u", {"g"});
  remember.membership_ttl_seconds = 60;
  remember.timestamp_ms = t0 + 1;
  Apply(remember);  // 2
  Entry send = Send(Scope::kGroup, "g", "member");
  send.timestamp_ms = t0 + 2;
  Apply(send);  // 3: r:1
  Entry expire = Membership(EntryKind::kRemoveFromGroups, Scope::kUser, "u", {"g"});
  expire.expiring = true;
  expire.timestamp_ms = t0 + 61'000;
  Apply(expire);  // 4: removes it
  ASSERT_TRUE(view_->GetConnection("r")->groups.empty());
  send.timestamp_ms = t0 + 62'000;
  Apply(send);  // 5: nobody
  ASSERT_EQ(numbered_["r"], (std::vector<Numbered>{{1, 3}}));
  CheckOne("r", checkpoints_["r"].front(), position_, 0);
}

TEST_F(ReplayTest, AnExpiringRemovalWithoutARememberedMembershipKeepsTheNumbering) {
  // r joined g explicitly; the user has no remembered membership (e.g. it was removed after
  // the sweep looked), so the sweep's removal changes nothing.
  Apply(Open("r", "u", {"g"}, true));  // 1
  Entry expire = Membership(EntryKind::kRemoveFromGroups, Scope::kUser, "u", {"g"});
  expire.expiring = true;
  // 2: a no-op, recorded as one (kNotFound) so replay skips it
  ASSERT_EQ(Apply(expire).status.code(), StatusCode::kNotFound);
  ASSERT_EQ(view_->GetConnection("r")->groups, std::set<std::string>{"g"});
  Apply(Send(Scope::kGroup, "g", "still a member"));  // 3: r:1
  ASSERT_EQ(numbered_["r"], (std::vector<Numbered>{{1, 3}}));
  CheckOne("r", checkpoints_["r"].front(), position_, 0);
}

// --- randomised histories -----------------------------------------------------------------

class ReplayRandomHistory : public ReplayTest, public ::testing::WithParamInterface<uint32_t> {
 protected:
  void Run(size_t steps) {
    std::mt19937 rng(GetParam());
    auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
    const std::vector<std::string> groups = {"g1", "g2", "g3"};
    const std::vector<std::optional<std::string>> users = {"alice", "bob", std::nullopt};
    const std::vector<std::string> filters = {"userId eq 'alice'", "'g1' in groups",
                                              "not ('g2' in groups)", "userId eq null",
                                              "connectionId eq 'c3' or 'g3' in groups"};
    std::vector<std::string> open;
    std::map<std::string, uint64_t> next_ack;
    int next_id = 0;
    auto any_open = [&]() -> std::string {
      return open.empty() ? "c-none" : open[pick(open.size())];
    };
    auto maybe_filter = [&]() -> std::shared_ptr<const Filter> {
      return pick(3) == 0 ? MakeFilter(filters[pick(filters.size())]) : nullptr;
    };
    auto scope_target = [&](Scope* scope, std::string* target) {
      switch (pick(4)) {
        case 0:
          *scope = Scope::kAll;
          target->clear();
          break;
        case 1:
          *scope = Scope::kGroup;
          *target = groups[pick(groups.size())];
          break;
        case 2:
          *scope = Scope::kUser;
          *target = users[pick(2)].value();
          break;
        default:
          *scope = Scope::kConnection;
          *target = any_open();
          break;
      }
    };
    for (size_t step = 0; step < steps; ++step) {
      size_t what = pick(100);
      if (open.size() < 2 || what < 8) {
        std::string id = "c" + std::to_string(next_id++);
        std::vector<std::string> initial;
        for (const auto& g : groups) {
          if (pick(3) == 0) initial.push_back(g);
        }
        std::vector<std::string> roles;
        if (pick(2)) roles.push_back(kJoinAny);
        if (pick(2)) roles.push_back(kSendAny);
        Apply(Open(id, users[pick(users.size())], initial, pick(4) != 0, roles));
        open.push_back(id);
      } else if (what < 12) {
        std::string id = any_open();
        Apply(Close(id));
        open.erase(std::find(open.begin(), open.end(), id));
      } else if (what < 14) {
        Scope scope;
        std::string target;
        scope_target(&scope, &target);
        if (scope == Scope::kAll && pick(2)) continue;  // keep the hub populated
        std::vector<std::string> excluded = {any_open()};
        ApplyResult r = Apply(CloseConnections(scope, target, excluded, maybe_filter()));
        for (const auto& id : r.closed) open.erase(std::find(open.begin(), open.end(), id));
      } else if (what < 26) {
        Scope scope;
        std::string target;
        scope_target(&scope, &target);
        EntryKind kind = pick(2) ? EntryKind::kAddToGroups : EntryKind::kRemoveFromGroups;
        std::vector<std::string> gs = {groups[pick(groups.size())]};
        if (kind == EntryKind::kRemoveFromGroups && pick(4) == 0) gs.clear();
        Apply(Membership(kind, scope, target, gs, maybe_filter()));
      } else if (what < 36) {
        std::string id = any_open();
        EntryKind kind = pick(3) ? EntryKind::kAddToGroups : EntryKind::kRemoveFromGroups;
        // Sometimes reuse an ackId: a duplicate.
        uint64_t ack = pick(5) == 0 && next_ack[id] > 0 ? next_ack[id] : ++next_ack[id];
        Apply(ClientMembership(kind, id, groups[pick(groups.size())], ack));
      } else if (what < 42) {
        Apply(Permit(
            pick(2) ? EntryKind::kGrant : EntryKind::kRevoke, any_open(),
            pick(2) ? Permission::kSendToGroup : Permission::kJoinLeaveGroup,
            pick(3) == 0 ? std::nullopt : std::optional<std::string>(groups[pick(groups.size())])));
      } else if (what < 55) {
        std::string id = any_open();
        uint64_t ack = pick(6) == 0 && next_ack[id] > 0 ? next_ack[id] : ++next_ack[id];
        Apply(ClientSend(id, groups[pick(groups.size())], ack, pick(2) != 0,
                         "client " + std::to_string(step)));
      } else if (what < 88) {
        Scope scope;
        std::string target;
        scope_target(&scope, &target);
        std::vector<std::string> excluded;
        if (pick(4) == 0) excluded.push_back(any_open());
        Apply(Send(scope, target, "rest " + std::to_string(step), excluded, maybe_filter()));
      } else {
        std::vector<std::pair<std::string, uint64_t>> acks;
        for (const auto& id : open) {
          if (pick(2) == 0) continue;
          auto c = view_->GetConnection(id);
          if (!c) continue;
          acks.emplace_back(id, c->seq == 0 ? 0 : c->acked + pick(c->seq - c->acked + 1));
        }
        Apply(CheckpointOf(acks));
      }
    }
  }
};

TEST_P(ReplayRandomHistory, ReplayFromEveryCheckpointNumbersExactlyAsTheViewDid) {
  Run(300);
  size_t numbered = 0;
  for (auto& [id, list] : numbered_) numbered += list.size();
  ASSERT_GT(numbered, 50u);  // the history really sends to reliable connections
  std::mt19937 rng(GetParam() * 7 + 1);
  size_t checked = CheckSampled(&rng);
  EXPECT_GT(checked, 100u);
}

INSTANTIATE_TEST_SUITE_P(ReplaySeeds, ReplayRandomHistory,
                         ::testing::Values(1u, 2u, 3u, 42u, 2024u));

}  // namespace
}  // namespace hubcast::storage
