#include "storage/permissions.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace hubcast::storage {
namespace {

constexpr auto kSend = Permission::kSendToGroup;
constexpr auto kJoin = Permission::kJoinLeaveGroup;
const std::optional<std::string> kAll = std::nullopt;

std::optional<std::string> G(const char* name) { return std::string(name); }

TEST(ParsePermissionTest, AcceptsBothNamesCaseInsensitively) {
  EXPECT_EQ(ParsePermission("sendToGroup"), kSend);
  EXPECT_EQ(ParsePermission("SENDTOGROUP"), kSend);
  EXPECT_EQ(ParsePermission("sendtogroup"), kSend);
  EXPECT_EQ(ParsePermission("joinLeaveGroup"), kJoin);
  EXPECT_EQ(ParsePermission("JoinLeaveGroup"), kJoin);
  EXPECT_EQ(ParsePermission("joinleavegroup"), kJoin);
}

TEST(ParsePermissionTest, RejectsOtherText) {
  EXPECT_EQ(ParsePermission(""), std::nullopt);
  EXPECT_EQ(ParsePermission("sendToGroups"), std::nullopt);
  EXPECT_EQ(ParsePermission("joinGroup"), std::nullopt);
  EXPECT_EQ(ParsePermission(" sendToGroup"), std::nullopt);
  EXPECT_EQ(ParsePermission("webpubsub.sendToGroup"), std::nullopt);
}

TEST(ParsePermissionTest, NamesRoundTrip) {
  EXPECT_STREQ(PermissionName(kSend), "sendToGroup");
  EXPECT_STREQ(PermissionName(kJoin), "joinLeaveGroup");
  EXPECT_EQ(ParsePermission(PermissionName(kSend)), kSend);
  EXPECT_EQ(ParsePermission(PermissionName(kJoin)), kJoin);
}

TEST(GlobTest, SingleStarStaysWithinSegment) {
  EXPECT_TRUE(GlobMatch("chat-*", "chat-1"));
  EXPECT_TRUE(GlobMatch("chat-*", "chat-room"));
  EXPECT_TRUE(GlobMatch("chat-*", "chat-"));
  EXPECT_FALSE(GlobMatch("chat-*", "chat.1"));
  EXPECT_FALSE(GlobMatch("chat-*", "chat-1.x"));
  EXPECT_FALSE(GlobMatch("chat-*", "xchat-1"));
  EXPECT_TRUE(GlobMatch("clientA.*", "clientA.alpha"));
  EXPECT_TRUE(GlobMatch("clientA.*", "clientA.1"));
  EXPECT_FALSE(GlobMatch("clientA.*", "clientA.alpha.room1"));
  EXPECT_FALSE(GlobMatch("clientA.*", "clientB.alpha"));
  EXPECT_TRUE(GlobMatch("*", "anything"));
  EXPECT_FALSE(GlobMatch("*", "a.b"));
  EXPECT_TRUE(GlobMatch("a*b*c", "aXXbYYc"));
  EXPECT_TRUE(GlobMatch("a*b*c", "abc"));
  EXPECT_FALSE(GlobMatch("a*b*c", "aXb.Yc"));
}

TEST(GlobTest, DoubleStarCrossesSegments) {
  EXPECT_TRUE(GlobMatch("clientA.**", "clientA.alpha"));
  EXPECT_TRUE(GlobMatch("clientA.**", "clientA.alpha.room1"));
  EXPECT_FALSE(GlobMatch("clientA.**", "clientB.anything"));
  EXPECT_FALSE(GlobMatch("clientA.**", "clientA"));
  EXPECT_TRUE(GlobMatch("**", "a.b.c"));
  EXPECT_TRUE(GlobMatch("**.room", "x.y.room"));
  EXPECT_FALSE(GlobMatch("**.room", "x.y.rooms"));
  EXPECT_TRUE(GlobMatch("a.**.z", "a.b.c.z"));
  EXPECT_TRUE(GlobMatch("a.**.z", "a..z"));
}

TEST(GlobTest, QuestionMarkIsOneNonDotChar) {
  EXPECT_TRUE(GlobMatch("clientA.rooms.?1", "clientA.rooms.a1"));
  EXPECT_TRUE(GlobMatch("clientA.rooms.?1", "clientA.rooms.11"));
  EXPECT_FALSE(GlobMatch("clientA.rooms.?1", "clientA.rooms.1"));
  EXPECT_FALSE(GlobMatch("clientA.rooms.?1", "clientA.rooms.a.1"));
  EXPECT_FALSE(GlobMatch("clientA.rooms.?1", "clientA.rooms.ab1"));
  EXPECT_FALSE(GlobMatch("a?b", "a.b"));
}

TEST(GlobTest, LiteralCharactersMatchExactly) {
  EXPECT_TRUE(GlobMatch("room1", "room1"));
  EXPECT_FALSE(GlobMatch("room1", "Room1"));
  EXPECT_FALSE(GlobMatch("room1", "room10"));
  EXPECT_FALSE(GlobMatch("room1", "room"));
}

TEST(GlobTest, EscapesMatchLiterally) {
  EXPECT_TRUE(GlobMatch("literal\\*star", "literal*star"));
  EXPECT_FALSE(GlobMatch("literal\\*star", "literalXstar"));
  EXPECT_TRUE(GlobMatch("project\\*123", "project*123"));
  EXPECT_TRUE(GlobMatch("what\\?", "what?"));
  EXPECT_FALSE(GlobMatch("what\\?", "whatX"));
  EXPECT_TRUE(GlobMatch("back\\\\slash", "back\\slash"));
  EXPECT_TRUE(GlobMatch("a\\**", "a*bc"));
  EXPECT_FALSE(GlobMatch("a\\**", "abc"));
}

TEST(GlobTest, InvalidPatternsMatchNothing) {
  EXPECT_FALSE(IsValidGlob(""));
  EXPECT_FALSE(IsValidGlob("dangling\\"));
  EXPECT_FALSE(IsValidGlob("unknown\\escape"));
  EXPECT_FALSE(GlobMatch("unknown\\escape", "unknownescape"));
  EXPECT_FALSE(GlobMatch("dangling\\", "dangling"));
}

TEST(GlobTest, AtMostFiveStars) {
  EXPECT_TRUE(IsValidGlob("*.*.*.*.*"));
  EXPECT_TRUE(GlobMatch("*.*.*.*.*", "a.b.c.d.e"));
  EXPECT_FALSE(IsValidGlob("*.*.*.*.*.*"));
  EXPECT_FALSE(GlobMatch("*.*.*.*.*.*", "a.b.c.d.e.f"));
  // Both stars of "**" count.
  EXPECT_TRUE(IsValidGlob("**.**.*"));
  EXPECT_FALSE(IsValidGlob("**.**.**"));
  EXPECT_FALSE(GlobMatch("**.**.**", "a.b.c"));
  // Escaped stars are literals and do not count.
  EXPECT_TRUE(IsValidGlob("\\*\\*\\*\\*\\*\\**"));
  EXPECT_TRUE(GlobMatch("\\*\\*\\*\\*\\*\\**", "******x"));
}

TEST(GlobTest, LongNamesDoNotBacktrackExponentially) {
  const std::string name(4000, 'a');
  EXPECT_FALSE(GlobMatch("*a*a*a*a*b", name));
  EXPECT_TRUE(GlobMatch("*a*a*a*a*", name));
}

TEST(PermissionSetTest, NoRolesGrantNothing) {
  PermissionSet set;
  EXPECT_FALSE(set.Allowed(kSend, G("g")));
  EXPECT_FALSE(set.Allowed(kJoin, G("g")));
  EXPECT_FALSE(set.Allowed(kSend, kAll));
  EXPECT_FALSE(set.Allowed(kJoin, kAll));
}

TEST(PermissionSetTest, AnyGroupRoles) {
  PermissionSet set({"webpubsub.sendToGroup"});
  EXPECT_TRUE(set.Allowed(kSend, G("g1")));
  EXPECT_TRUE(set.Allowed(kSend, G("a.b.c")));
  EXPECT_TRUE(set.Allowed(kSend, kAll));
  EXPECT_FALSE(set.Allowed(kJoin, G("g1")));
  EXPECT_FALSE(set.Allowed(kJoin, kAll));

  PermissionSet join({"webpubsub.joinLeaveGroup"});
  EXPECT_TRUE(join.Allowed(kJoin, G("g1")));
  EXPECT_TRUE(join.Allowed(kJoin, kAll));
  EXPECT_FALSE(join.Allowed(kSend, G("g1")));
}

TEST(PermissionSetTest, LiteralRolesKeepTheRestOfTheString) {
  PermissionSet set({"webpubsub.sendToGroup.room1", "webpubsub.joinLeaveGroup.a.b.c"});
  EXPECT_TRUE(set.Allowed(kSend, G("room1")));
  EXPECT_FALSE(set.Allowed(kSend, G("room2")));
  EXPECT_FALSE(set.Allowed(kSend, G("Room1")));
  EXPECT_FALSE(set.Allowed(kJoin, G("room1")));
  EXPECT_TRUE(set.Allowed(kJoin, G("a.b.c")));
  EXPECT_FALSE(set.Allowed(kJoin, G("a.b")));
  EXPECT_FALSE(set.Allowed(kSend, kAll));
  EXPECT_FALSE(set.Allowed(kJoin, kAll));
}

TEST(PermissionSetTest, LiteralRoleDoesNotInterpretGlobCharacters) {
  PermissionSet set({"webpubsub.sendToGroup.chat-*"});
  EXPECT_TRUE(set.Allowed(kSend, G("chat-*")));
  EXPECT_FALSE(set.Allowed(kSend, G("chat-1")));
}

TEST(PermissionSetTest, PatternRoles) {
  PermissionSet set({"webpubsub.sendToGroups.clientA.**", "webpubsub.joinLeaveGroups.public.*"});
  EXPECT_TRUE(set.Allowed(kSend, G("clientA.alpha.room1")));
  EXPECT_FALSE(set.Allowed(kSend, G("clientB.alpha")));
  EXPECT_FALSE(set.Allowed(kSend, G("public.lobby")));
  EXPECT_TRUE(set.Allowed(kJoin, G("public.lobby")));
  EXPECT_FALSE(set.Allowed(kJoin, G("public.lobby.x")));
  EXPECT_FALSE(set.Allowed(kJoin, G("clientA.alpha")));
  // A pattern is not "every group".
  EXPECT_FALSE(set.Allowed(kSend, kAll));
  EXPECT_FALSE(set.Allowed(kJoin, kAll));
}

TEST(PermissionSetTest, InvalidPatternRoleGrantsNothing) {
  PermissionSet set({"webpubsub.sendToGroups.*.*.*.*.*.*", "webpubsub.joinLeaveGroups.bad\\"});
  EXPECT_FALSE(set.Allowed(kSend, G("a.b.c.d.e.f")));
  EXPECT_FALSE(set.Allowed(kJoin, G("bad")));
  EXPECT_FALSE(set.Allowed(kJoin, G("bad\\")));
}

TEST(PermissionSetTest, UnknownRolesGrantNothingButAreKept) {
  const std::vector<std::string> roles = {"admin",
                                          "webpubsub.sendToGroupX",
                                          "webpubsub.joinLeaveGroups",
                                          "WEBPUBSUB.SENDTOGROUP",
                                          "webpubsub.sendtogroup.g",
                                          "webpubsub.publish"};
  PermissionSet set(roles);
  EXPECT_EQ(set.roles(), roles);
  for (auto p : {kSend, kJoin}) {
    EXPECT_FALSE(set.Allowed(p, G("g")));
    EXPECT_FALSE(set.Allowed(p, G("X")));
    EXPECT_FALSE(set.Allowed(p, kAll));
  }
}

TEST(PermissionSetTest, PermissionsAreIndependent) {
  PermissionSet set({"webpubsub.sendToGroup", "webpubsub.joinLeaveGroup"});
  set.Revoke(kSend, kAll);
  EXPECT_FALSE(set.Allowed(kSend, G("g")));
  EXPECT_TRUE(set.Allowed(kJoin, G("g")));
  set.Grant(kJoin, G("x"));
  set.Revoke(kJoin, G("g"));
  EXPECT_FALSE(set.Allowed(kJoin, G("g")));
  EXPECT_FALSE(set.Allowed(kSend, G("x")));
}

// Grant(p, g) -> g allowed, and no longer revoked.
TEST(PermissionSetTest, GrantGroupAllowsOnlyThatGroup) {
  PermissionSet set;
  set.Grant(kSend, G("g1"));
  EXPECT_TRUE(set.Allowed(kSend, G("g1")));
  EXPECT_FALSE(set.Allowed(kSend, G("g2")));
  EXPECT_FALSE(set.Allowed(kSend, kAll));
  EXPECT_FALSE(set.Allowed(kJoin, G("g1")));
}

TEST(PermissionSetTest, GrantAfterRevokeOfSameGroupAllowsIt) {
  PermissionSet set({"webpubsub.sendToGroup"});
  set.Revoke(kSend, G("g1"));
  EXPECT_FALSE(set.Allowed(kSend, G("g1")));
  set.Grant(kSend, G("g1"));
  EXPECT_TRUE(set.Allowed(kSend, G("g1")));
}

// Grant(p, all) -> every group; clears revokes and deny-all.
TEST(PermissionSetTest, GrantAllAllowsEveryGroup) {
  PermissionSet set;
  set.Grant(kJoin, kAll);
  EXPECT_TRUE(set.Allowed(kJoin, G("anything")));
  EXPECT_TRUE(set.Allowed(kJoin, G("a.b.c")));
  EXPECT_TRUE(set.Allowed(kJoin, kAll));
  EXPECT_FALSE(set.Allowed(kSend, G("anything")));
}

TEST(PermissionSetTest, GrantAllClearsRevokes) {
  PermissionSet set({"webpubsub.sendToGroup"});
  set.Revoke(kSend, G("g1"));
  set.Revoke(kSend, G("g2"));
  set.Grant(kSend, kAll);
  EXPECT_TRUE(set.Allowed(kSend, G("g1")));
  EXPECT_TRUE(set.Allowed(kSend, G("g2")));
}

TEST(PermissionSetTest, GrantAllClearsDenyAll) {
  PermissionSet set({"webpubsub.sendToGroup"});
  set.Revoke(kSend, kAll);
  EXPECT_FALSE(set.Allowed(kSend, kAll));
  set.Grant(kSend, kAll);
  EXPECT_TRUE(set.Allowed(kSend, G("g")));
  EXPECT_TRUE(set.Allowed(kSend, kAll));
}

// Revoke(p, g) -> g denied even if a role or a wildcard grant allows it.
TEST(PermissionSetTest, RevokeGroupBeatsAnyGroupRole) {
  PermissionSet set({"webpubsub.joinLeaveGroup"});
  set.Revoke(kJoin, G("g1"));
  EXPECT_FALSE(set.Allowed(kJoin, G("g1")));
  EXPECT_TRUE(set.Allowed(kJoin, G("g2")));
  // Not a deny-all: the any-group role still answers the no-target question.
  EXPECT_TRUE(set.Allowed(kJoin, kAll));
}

TEST(PermissionSetTest, RevokeGroupBeatsLiteralAndPatternRoles) {
  PermissionSet set({"webpubsub.sendToGroup.room1", "webpubsub.sendToGroups.chat-*"});
  set.Revoke(kSend, G("room1"));
  set.Revoke(kSend, G("chat-1"));
  EXPECT_FALSE(set.Allowed(kSend, G("room1")));
  EXPECT_FALSE(set.Allowed(kSend, G("chat-1")));
  EXPECT_TRUE(set.Allowed(kSend, G("chat-2")));
}

TEST(PermissionSetTest, RevokeGroupBeatsEarlierGrantAll) {
  PermissionSet set;
  set.Grant(kSend, kAll);
  set.Revoke(kSend, G("g1"));
  EXPECT_FALSE(set.Allowed(kSend, G("g1")));
  EXPECT_TRUE(set.Allowed(kSend, G("g2")));
  EXPECT_TRUE(set.Allowed(kSend, kAll));
}

TEST(PermissionSetTest, RevokeGroupUndoesEarlierGrantOfIt) {
  PermissionSet set;
  set.Grant(kSend, G("g1"));
  set.Revoke(kSend, G("g1"));
  EXPECT_FALSE(set.Allowed(kSend, G("g1")));
}

TEST(PermissionSetTest, RevokeOfUnrelatedGroupChangesNothingElse) {
  PermissionSet set({"webpubsub.sendToGroup.room1"});
  set.Revoke(kSend, G("room2"));
  EXPECT_TRUE(set.Allowed(kSend, G("room1")));
  EXPECT_FALSE(set.Allowed(kSend, G("room2")));
}

// Revoke(p, all) -> runtime grants removed and every group denied until granted again.
TEST(PermissionSetTest, RevokeAllDeniesEveryRole) {
  PermissionSet set(
      {"webpubsub.sendToGroup", "webpubsub.sendToGroup.room1", "webpubsub.sendToGroups.chat-*"});
  set.Revoke(kSend, kAll);
  EXPECT_FALSE(set.Allowed(kSend, G("room1")));
  EXPECT_FALSE(set.Allowed(kSend, G("chat-1")));
  EXPECT_FALSE(set.Allowed(kSend, G("other")));
  EXPECT_FALSE(set.Allowed(kSend, kAll));
}

TEST(PermissionSetTest, RevokeAllRemovesRuntimeGrants) {
  PermissionSet set;
  set.Grant(kJoin, G("g1"));
  set.Grant(kJoin, kAll);
  set.Revoke(kJoin, kAll);
  EXPECT_FALSE(set.Allowed(kJoin, G("g1")));
  EXPECT_FALSE(set.Allowed(kJoin, G("g2")));
  EXPECT_FALSE(set.Allowed(kJoin, kAll));
}

TEST(PermissionSetTest, GrantGroupAfterRevokeAllAllowsOnlyThatGroup) {
  PermissionSet set({"webpubsub.sendToGroup"});
  set.Revoke(kSend, kAll);
  set.Grant(kSend, G("g1"));
  EXPECT_TRUE(set.Allowed(kSend, G("g1")));
  EXPECT_FALSE(set.Allowed(kSend, G("g2")));
  EXPECT_FALSE(set.Allowed(kSend, kAll));
}

TEST(PermissionSetTest, RevokeGroupThenRevokeAllThenGrantAll) {
  PermissionSet set({"webpubsub.sendToGroups.chat-*"});
  set.Revoke(kSend, G("chat-1"));
  set.Revoke(kSend, kAll);
  set.Grant(kSend, kAll);
  EXPECT_TRUE(set.Allowed(kSend, G("chat-1")));
  EXPECT_TRUE(set.Allowed(kSend, G("elsewhere")));
}

TEST(PermissionSetTest, RevokeAllThenGrantGroupThenRevokeGroup) {
  PermissionSet set({"webpubsub.sendToGroup"});
  set.Revoke(kSend, kAll);
  set.Grant(kSend, G("g1"));
  set.Revoke(kSend, G("g1"));
  EXPECT_FALSE(set.Allowed(kSend, G("g1")));
  EXPECT_FALSE(set.Allowed(kSend, G("g2")));
}

TEST(PermissionSetTest, GrantAllThenRevokeAll) {
  PermissionSet set;
  set.Grant(kSend, kAll);
  set.Revoke(kSend, kAll);
  EXPECT_FALSE(set.Allowed(kSend, G("g")));
  EXPECT_FALSE(set.Allowed(kSend, kAll));
}

TEST(PermissionSetTest, NoTargetQuestionIgnoresSingleGroupGrants) {
  PermissionSet set({"webpubsub.sendToGroup.room1", "webpubsub.sendToGroups.**"});
  set.Grant(kSend, G("g1"));
  EXPECT_FALSE(set.Allowed(kSend, kAll));
}

TEST(PermissionSetTest, IsDeterministicForTheSameHistory) {
  auto build = [] {
    PermissionSet set({"webpubsub.joinLeaveGroups.team.*", "webpubsub.sendToGroup"});
    set.Revoke(kJoin, G("team.a"));
    set.Grant(kSend, G("x"));
    set.Revoke(kSend, kAll);
    set.Grant(kJoin, G("team.a"));
    set.Revoke(kJoin, G("team.b"));
    return set;
  };
  const PermissionSet a = build();
  const PermissionSet b = build();
  for (const char* g : {"team.a", "team.b", "team.c", "x", "y"}) {
    for (auto p : {kSend, kJoin}) EXPECT_EQ(a.Allowed(p, G(g)), b.Allowed(p, G(g))) << g;
  }
  EXPECT_TRUE(a.Allowed(kJoin, G("team.a")));
  EXPECT_FALSE(a.Allowed(kJoin, G("team.b")));
  EXPECT_TRUE(a.Allowed(kJoin, G("team.c")));
  EXPECT_FALSE(a.Allowed(kSend, G("x")));
}

TEST(PermissionSetTest, CopyKeepsRolesAndOverridesAndIsIndependent) {
  PermissionSet original({"webpubsub.sendToGroup.room1", "webpubsub.joinLeaveGroups.team.*"});
  original.Grant(kSend, G("g1"));
  original.Revoke(kJoin, G("team.b"));
  PermissionSet copy = original;
  copy.Revoke(kSend, G("room1"));
  copy.Grant(kJoin, kAll);
  EXPECT_TRUE(original.Allowed(kSend, G("room1")));
  EXPECT_TRUE(original.Allowed(kSend, G("g1")));
  EXPECT_FALSE(original.Allowed(kJoin, G("team.b")));
  EXPECT_FALSE(original.Allowed(kJoin, kAll));
  EXPECT_FALSE(copy.Allowed(kSend, G("room1")));
  EXPECT_TRUE(copy.Allowed(kSend, G("g1")));
  EXPECT_TRUE(copy.Allowed(kJoin, G("team.b")));
  PermissionSet assigned;
  assigned = copy;
  EXPECT_EQ(assigned.roles(), copy.roles());
  EXPECT_TRUE(assigned.Allowed(kJoin, kAll));
  EXPECT_FALSE(assigned.Allowed(kSend, G("room1")));
}

TEST(PermissionSetTest, OverridesRoundTripThroughRestore) {
  PermissionSet set({"webpubsub.sendToGroup"});
  set.Grant(kJoin, G("a"));
  set.Revoke(kSend, G("b"));
  PermissionSet restored({"webpubsub.sendToGroup"});
  for (auto p : {kSend, kJoin}) restored.RestoreOverrides(p, set.overrides(p));
  for (auto p : {kSend, kJoin}) {
    EXPECT_EQ(restored.overrides(p).granted, set.overrides(p).granted);
    EXPECT_EQ(restored.overrides(p).revoked, set.overrides(p).revoked);
  }
  EXPECT_TRUE(restored.Allowed(kJoin, G("a")));
  EXPECT_FALSE(restored.Allowed(kSend, G("b")));
  EXPECT_TRUE(restored.Allowed(kSend, G("c")));
}

// Every connection's record holds one: a connection without group roles or single-group
// overrides keeps its permissions inline in a few words (issue #10: memory per connection).
TEST(PermissionSetTest, StaysSmallWithoutGroupNames) { EXPECT_LE(sizeof(PermissionSet), 48u); }

}  // namespace
}  // namespace hubcast::storage
