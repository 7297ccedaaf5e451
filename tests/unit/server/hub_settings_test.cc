// Tests of server/hub_settings.h: the event-handler, anonymous-connect and
// hub-keepalive-seconds options (PROTOCOL.md 5.8), lookup with "*" fallback, and URL resolution.
#include "server/hub_settings.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hubcast::server {
namespace {

using Strings = std::vector<std::string>;

HubSettings MustParse(const Strings& handlers, const Strings& anonymous = {},
                      const Strings& keepalive = {}) {
  Result<HubSettings> r = HubSettings::Parse(handlers, anonymous, keepalive);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? std::move(r).value() : HubSettings();
}

// The handler `hub` uses for a user event, as its URL template ("" when none).
std::string UserHandler(const HubSettings& s, std::string_view hub, std::string_view event) {
  const EventHandlerSettings* h = s.ForUserEvent(hub, event);
  return h ? h->url_template : "";
}

std::string SystemHandler(const HubSettings& s, std::string_view hub, SystemEvent e) {
  const EventHandlerSettings* h = s.ForSystemEvent(hub, e);
  return h ? h->url_template : "";
}

// Parse fails with InvalidArgument; returns the message.
std::string ParseError(const Strings& handlers, const Strings& anonymous = {},
                       const Strings& keepalive = {}) {
  Result<HubSettings> r = HubSettings::Parse(handlers, anonymous, keepalive);
  EXPECT_FALSE(r.ok());
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

std::string HandlerError(const std::string& value) { return ParseError({value}); }

// ---- Parsing ----------------------------------------------------------------------------

TEST(HubSettingsParse, NoOptionsGiveEmptySettingsWithoutHandlers) {
  HubSettings s = MustParse({});
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.ForUserEvent("chat", "message"), nullptr);
  EXPECT_EQ(s.ForSystemEvent("chat", SystemEvent::kConnect), nullptr);
  EXPECT_FALSE(s.AllowAnonymous("chat"));
  EXPECT_EQ(s.KeepaliveSeconds("chat"), std::nullopt);
}

TEST(HubSettingsParse, DefaultConstructedSettingsAreEmpty) {
  HubSettings s;
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.ForUserEvent("chat", "message"), nullptr);
}

TEST(HubSettingsParse, BareUrlHandlesAllUserAndSystemEvents) {
  HubSettings s = MustParse({"chat=https://app.example/api/{event}"});
  EXPECT_FALSE(s.empty());
  const EventHandlerSettings* h = s.ForUserEvent("chat", "message");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->url_template, "https://app.example/api/{event}");
  EXPECT_EQ(h->user_events, Strings{"*"});
  EXPECT_TRUE(h->connect);
  EXPECT_TRUE(h->connected);
  EXPECT_TRUE(h->disconnected);
}

TEST(HubSettingsParse, UserPatternListIsTrimmedAndLowerCased) {
  HubSettings s = MustParse({"chat=http://h/x;user= Message , JOIN,leave "});
  const EventHandlerSettings* h = s.ForUserEvent("chat", "join");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->user_events, (Strings{"message", "join", "leave"}));
}

TEST(HubSettingsParse, UserPatternSingleNameAndStar) {
  HubSettings one = MustParse({"chat=http://h/x;user=message"});
  EXPECT_EQ(one.ForUserEvent("chat", "message")->user_events, Strings{"message"});
  EXPECT_EQ(one.ForUserEvent("chat", "other"), nullptr);
  HubSettings all = MustParse({"chat=http://h/x;user=*"});
  EXPECT_EQ(all.ForUserEvent("chat", "anything")->user_events, Strings{"*"});
}

TEST(HubSettingsParse, EmptyUserPatternHandlesNoUserEvents) {
  HubSettings s = MustParse({"chat=http://h/x;user="});
  EXPECT_EQ(s.ForUserEvent("chat", "message"), nullptr);
  const EventHandlerSettings* h = s.ForSystemEvent("chat", SystemEvent::kConnect);
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(h->user_events.empty());
}

TEST(HubSettingsParse, SystemListSelectsSubsetCaseInsensitively) {
  HubSettings s = MustParse({"chat=http://h/x;system=Connect, DISCONNECTED"});
  const EventHandlerSettings* h = s.ForSystemEvent("chat", SystemEvent::kConnect);
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(h->connect);
  EXPECT_FALSE(h->connected);
  EXPECT_TRUE(h->disconnected);
  EXPECT_EQ(s.ForSystemEvent("chat", SystemEvent::kConnected), nullptr);
}

// Group events (azure.webpubsub.gp.joined / gp.left) only for handlers that name them, as
// Azure sends them only when an event handler is configured for them.
TEST(HubSettingsParse, GroupEventsOnlyWhenTheSystemListNamesThem) {
  HubSettings bare = MustParse({"chat=http://h/x"});
  EXPECT_EQ(bare.ForSystemEvent("chat", SystemEvent::kGroupJoined), nullptr);
  EXPECT_EQ(bare.ForSystemEvent("chat", SystemEvent::kGroupLeft), nullptr);
  HubSettings s = MustParse({"chat=http://h/x;system=connected,Joined,LEFT"});
  const EventHandlerSettings* h = s.ForSystemEvent("chat", SystemEvent::kGroupJoined);
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(h->joined);
  EXPECT_TRUE(h->left);
  EXPECT_FALSE(h->connect);
  EXPECT_NE(s.ForSystemEvent("chat", SystemEvent::kGroupLeft), nullptr);
  HubSettings only_left = MustParse({"chat=http://h/x;system=left"});
  EXPECT_EQ(only_left.ForSystemEvent("chat", SystemEvent::kGroupJoined), nullptr);
}

TEST(HubSettingsParse, EmptySystemListMeansNoSystemEvents) {
  HubSettings s = MustParse({"chat=http://h/x;system="});
  EXPECT_EQ(s.ForSystemEvent("chat", SystemEvent::kConnect), nullptr);
  EXPECT_EQ(s.ForSystemEvent("chat", SystemEvent::kConnected), nullptr);
  EXPECT_EQ(s.ForSystemEvent("chat", SystemEvent::kDisconnected), nullptr);
  EXPECT_EQ(UserHandler(s, "chat", "message"), "http://h/x");
}

TEST(HubSettingsParse, AttributesInEitherOrderWithCaseInsensitiveKeysAndSpaces) {
  HubSettings s = MustParse({" Chat = http://h/x ; SYSTEM=connected ; User=a,b "});
  const EventHandlerSettings* h = s.ForUserEvent("chat", "b");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->url_template, "http://h/x");
  EXPECT_EQ(h->user_events, (Strings{"a", "b"}));
  EXPECT_FALSE(h->connect);
  EXPECT_TRUE(h->connected);
  EXPECT_FALSE(h->disconnected);
}

TEST(HubSettingsParse, HubIsSplitAtTheFirstEqualsSign) {
  HubSettings s = MustParse({"chat=http://h/api?code=abc=&x={event}"});
  EXPECT_EQ(UserHandler(s, "chat", "message"), "http://h/api?code=abc=&x={event}");
}

TEST(HubSettingsParse, UrlTemplateForms) {
  for (const char* url : {
           "http://127.0.0.1:3000/api/webpubsub/hubs/{hub}/",
           "https://app.azurewebsites.net/runtime/webhooks/webpubsub?code=k",
           "http://localhost:7071/events/{hub}/{event}",
           "HTTPS://Example.COM",
           "http://[::1]:8080/{event}",
           "http://user:pw@host:1/p",
           "http://host/{event}?hub={hub}#frag",
       }) {
    HubSettings s = MustParse({std::string("*=") + url});
    EXPECT_EQ(UserHandler(s, "chat", "message"), url);
  }
}

TEST(HubSettingsParse, AnonymousConnectAllowAndDenyCaseInsensitive) {
  HubSettings s = MustParse({}, {"chat=ALLOW", "Private=Deny", "open = allow "});
  EXPECT_TRUE(s.AllowAnonymous("chat"));
  EXPECT_FALSE(s.AllowAnonymous("private"));
  EXPECT_TRUE(s.AllowAnonymous("open"));
  EXPECT_FALSE(s.AllowAnonymous("other"));
}

TEST(HubSettingsParse, KeepaliveBoundsAreInclusive) {
  HubSettings s = MustParse({}, {}, {"a=1", "b=120", "c=30"});
  EXPECT_EQ(s.KeepaliveSeconds("a"), 1);
  EXPECT_EQ(s.KeepaliveSeconds("b"), 120);
  EXPECT_EQ(s.KeepaliveSeconds("c"), 30);
  EXPECT_EQ(s.KeepaliveSeconds("d"), std::nullopt);
}

TEST(HubSettingsParse, HubNameUsesTheHubGrammar) {
  HubSettings s = MustParse({"My_Hub.v1[x]`,=http://h/"});
  EXPECT_EQ(UserHandler(s, "my_hub.v1[x]`,", "e"), "http://h/");
}

// ---- Errors -----------------------------------------------------------------------------

TEST(HubSettingsErrors, HandlerWithoutHubSeparatorIsRejected) {
  std::string m = HandlerError("http://h/x");
  EXPECT_NE(m.find("event-handler"), std::string::npos) << m;
  EXPECT_NE(m.find("http://h/x"), std::string::npos) << m;
}

TEST(HubSettingsErrors, InvalidHubNamesAreRejected) {
  for (const char* v :
       {"=http://h/", "1chat=http://h/", "ch at=http://h/", "chat!=http://h/", "**=http://h/"}) {
    std::string m = HandlerError(v);
    EXPECT_NE(m.find("event-handler"), std::string::npos) << v << ": " << m;
    EXPECT_NE(m.find(v), std::string::npos) << v << ": " << m;
  }
  EXPECT_NE(HandlerError(std::string(129, 'a') + "=http://h/").find("event-handler"),
            std::string::npos);
  EXPECT_NE(ParseError({}, {"bad hub=allow"}).find("anonymous-connect"), std::string::npos);
  EXPECT_NE(ParseError({}, {}, {"9=10"}).find("hub-keepalive-seconds"), std::string::npos);
}

TEST(HubSettingsErrors, UrlMustBeHttpOrHttpsWithAHost) {
  for (const char* v :
       {"chat=", "chat=ftp://h/", "chat=h/x", "chat=tunnel://h", "chat=http://", "chat=http:///x",
        "chat=https://:80/x", "chat=http://user@/x", "chat=http://[]/", "chat=http://[::1/",
        "chat=http://h:/x", "chat=http://h:0/", "chat=http://h:65536/", "chat=http://h:8a/",
        "chat=http://h/a b"}) {
    std::string m = HandlerError(v);
    EXPECT_NE(m.find("event-handler"), std::string::npos) << v << ": " << m;
  }
}

TEST(HubSettingsErrors, PlaceholdersInHostAreRejected) {
  for (const char* v : {"chat=http://{hub}.example.com/", "chat=https://api.{event}/x",
                        "chat=http://host:{event}/", "chat=http://{hub}@host/"}) {
    std::string m = HandlerError(v);
    EXPECT_NE(m.find("host"), std::string::npos) << v << ": " << m;
    EXPECT_NE(m.find(v), std::string::npos) << v << ": " << m;
  }
}

TEST(HubSettingsErrors, UnknownOrMalformedPlaceholdersAreRejected) {
  std::string m = HandlerError("chat=http://h/{foo}");
  EXPECT_NE(m.find("{foo}"), std::string::npos) << m;
  EXPECT_NE(HandlerError("chat=http://h/{Event}").find("{Event}"), std::string::npos);
  EXPECT_NE(HandlerError("chat=http://h/{category}").find("{category}"), std::string::npos);
  EXPECT_NE(HandlerError("chat=http://h/{event").find("unterminated"), std::string::npos);
  EXPECT_NE(HandlerError("chat=http://h/event}").find("'}'"), std::string::npos);
  EXPECT_NE(HandlerError("chat=http://h/{}").find("{}"), std::string::npos);
}

TEST(HubSettingsErrors, DuplicateAttributesAreRejected) {
  EXPECT_NE(HandlerError("chat=http://h/;user=a;user=b").find("more than once"), std::string::npos);
  EXPECT_NE(HandlerError("chat=http://h/;system=connect;SYSTEM=connected").find("more than once"),
            std::string::npos);
}

TEST(HubSettingsErrors, UnknownOrMalformedAttributesAreRejected) {
  EXPECT_NE(HandlerError("chat=http://h/;auth=none").find("auth"), std::string::npos);
  EXPECT_NE(HandlerError("chat=http://h/;user").find("user"), std::string::npos);
  EXPECT_NE(HandlerError("chat=http://h/a;b").find("%3B"), std::string::npos);
  HandlerError("chat=http://h/;");
}

TEST(HubSettingsErrors, BadUserPatternsAreRejected) {
  EXPECT_NE(HandlerError("chat=http://h/;user=a,,b").find("empty event name"), std::string::npos);
  HandlerError("chat=http://h/;user=a,");
  HandlerError("chat=http://h/;user=,");
  EXPECT_NE(HandlerError("chat=http://h/;user=a,*").find("*"), std::string::npos);
}

TEST(HubSettingsErrors, BadSystemListsAreRejected) {
  std::string m = HandlerError("chat=http://h/;system=connect,message");
  EXPECT_NE(m.find("'message'"), std::string::npos) << m;
  HandlerError("chat=http://h/;system=connect,");
  HandlerError("chat=http://h/;system=*");
}

TEST(HubSettingsErrors, AnonymousConnectPolicyMustBeAllowOrDeny) {
  for (const char* v : {"chat=yes", "chat=", "chat", "chat=allow,deny"}) {
    std::string m = ParseError({}, {v});
    EXPECT_NE(m.find("anonymous-connect"), std::string::npos) << v << ": " << m;
    EXPECT_NE(m.find(v), std::string::npos) << v << ": " << m;
  }
}

TEST(HubSettingsErrors, KeepaliveMustBeAnIntegerFrom1To120) {
  for (const char* v : {"chat=0", "chat=121", "chat=-5", "chat=+5", "chat=5s", "chat=", "chat",
                        "chat=99999999999999999999", "chat=1.5"}) {
    std::string m = ParseError({}, {}, {v});
    EXPECT_NE(m.find("hub-keepalive-seconds"), std::string::npos) << v << ": " << m;
    EXPECT_NE(m.find(v), std::string::npos) << v << ": " << m;
  }
}

TEST(HubSettingsErrors, SameHubTwiceForAScalarSettingIsRejected) {
  EXPECT_NE(ParseError({}, {"chat=allow", "CHAT=deny"}).find("more than once"), std::string::npos);
  EXPECT_NE(ParseError({}, {}, {"*=10", "*=20"}).find("more than once"), std::string::npos);
}

TEST(HubSettingsErrors, TheFirstBadValueFailsTheWholeParse) {
  std::string m = ParseError({"chat=http://ok/", "chat=http://h/{foo}"}, {"chat=allow"});
  EXPECT_NE(m.find("{foo}"), std::string::npos) << m;
}

TEST(HubSettingsErrors, ErrorsElideTheUrlQueryWhichMayHoldASecret) {
  std::string m = HandlerError("chat=https://f.example/api?code=SECRET123;system=bogus");
  EXPECT_EQ(m.find("SECRET123"), std::string::npos) << m;
  EXPECT_NE(m.find("https://f.example/api?"), std::string::npos) << m;
  EXPECT_NE(m.find("system=bogus"), std::string::npos) << m;
}

// ---- Lookup -----------------------------------------------------------------------------

TEST(HubSettingsLookup, HandlersKeepOptionOrderAndTheFirstMatchWins) {
  HubSettings s = MustParse({
      "chat=http://first/;user=a,b",
      "chat=http://second/",
      "chat=http://third/;user=c",
  });
  EXPECT_EQ(UserHandler(s, "chat", "a"), "http://first/");
  EXPECT_EQ(UserHandler(s, "chat", "b"), "http://first/");
  EXPECT_EQ(UserHandler(s, "chat", "c"), "http://second/");
  EXPECT_EQ(UserHandler(s, "chat", "message"), "http://second/");
  EXPECT_EQ(SystemHandler(s, "chat", SystemEvent::kConnect), "http://first/");
}

TEST(HubSettingsLookup, SystemEventsGoToTheFirstHandlerThatSelectsThem) {
  HubSettings s = MustParse({
      "chat=http://users/;system=",
      "chat=http://auth/;user=;system=connect",
      "chat=http://notify/;user=;system=connected,disconnected",
  });
  EXPECT_EQ(SystemHandler(s, "chat", SystemEvent::kConnect), "http://auth/");
  EXPECT_EQ(SystemHandler(s, "chat", SystemEvent::kConnected), "http://notify/");
  EXPECT_EQ(SystemHandler(s, "chat", SystemEvent::kDisconnected), "http://notify/");
  EXPECT_EQ(UserHandler(s, "chat", "message"), "http://users/");
}

TEST(HubSettingsLookup, HubWithoutHandlersUsesTheStarHandlers) {
  HubSettings s = MustParse({"*=http://default/", "chat=http://chat/"});
  EXPECT_EQ(UserHandler(s, "chat", "message"), "http://chat/");
  EXPECT_EQ(UserHandler(s, "other", "message"), "http://default/");
  EXPECT_EQ(SystemHandler(s, "other", SystemEvent::kConnected), "http://default/");
}

TEST(HubSettingsLookup, HubWithOwnHandlersDoesNotFallBackPerEvent) {
  HubSettings s = MustParse({"*=http://default/", "chat=http://chat/;user=a;system=connect"});
  EXPECT_EQ(UserHandler(s, "chat", "b"), "");
  EXPECT_EQ(SystemHandler(s, "chat", SystemEvent::kDisconnected), "");
}

TEST(HubSettingsLookup, EachFieldFallsBackToStarSeparately) {
  // chat has its own anonymous policy only: handlers and keep-alive come from "*".
  HubSettings s = MustParse({"*=http://default/"}, {"chat=allow", "*=deny"}, {"*=45", "fast=5"});
  EXPECT_EQ(UserHandler(s, "chat", "message"), "http://default/");
  EXPECT_TRUE(s.AllowAnonymous("chat"));
  EXPECT_EQ(s.KeepaliveSeconds("chat"), 45);
  // fast has its own keep-alive only.
  EXPECT_EQ(s.KeepaliveSeconds("fast"), 5);
  EXPECT_FALSE(s.AllowAnonymous("fast"));
  EXPECT_EQ(UserHandler(s, "fast", "message"), "http://default/");
}

TEST(HubSettingsLookup, StarAnonymousPolicyAppliesToHubsWithoutTheirOwn) {
  HubSettings s = MustParse({}, {"*=allow", "secure=deny"});
  EXPECT_TRUE(s.AllowAnonymous("anything"));
  EXPECT_FALSE(s.AllowAnonymous("secure"));
}

TEST(HubSettingsLookup, WithoutStarUnsetFieldsHaveDefaults) {
  HubSettings s = MustParse({"chat=http://chat/"}, {}, {"chat=10"});
  EXPECT_FALSE(s.AllowAnonymous("chat"));
  EXPECT_EQ(s.KeepaliveSeconds("other"), std::nullopt);
  EXPECT_EQ(s.ForUserEvent("other", "message"), nullptr);
  EXPECT_EQ(s.ForSystemEvent("other", SystemEvent::kConnect), nullptr);
}

TEST(HubSettingsLookup, HubNamesAreCaseInsensitive) {
  HubSettings s = MustParse({"ChatRoom=http://chat/", "CHATROOM=http://second/"},
                            {"CHATroom=allow"}, {"chatROOM=7"});
  EXPECT_EQ(UserHandler(s, "chatroom", "m"), "http://chat/");
  EXPECT_EQ(UserHandler(s, "CHATROOM", "m"), "http://chat/");
  EXPECT_EQ(UserHandler(s, "ChatRoom", "m"), "http://chat/");
  EXPECT_TRUE(s.AllowAnonymous("Chatroom"));
  EXPECT_EQ(s.KeepaliveSeconds("CHATROOM"), 7);
}

TEST(HubSettingsLookup, UserEventNamesAreCaseInsensitive) {
  HubSettings s = MustParse({"chat=http://a/;user=Message,JOIN", "chat=http://b/;user=none"});
  EXPECT_EQ(UserHandler(s, "chat", "MESSAGE"), "http://a/");
  EXPECT_EQ(UserHandler(s, "chat", "join"), "http://a/");
  EXPECT_EQ(UserHandler(s, "chat", "Join"), "http://a/");
  EXPECT_EQ(UserHandler(s, "chat", "NONE"), "http://b/");
  EXPECT_EQ(UserHandler(s, "chat", "leave"), "");
}

// ---- EventHandlerSettings ---------------------------------------------------------------

TEST(EventHandlerSettings, StarUserPatternMatchesEveryEvent) {
  EventHandlerSettings h;
  h.user_events = {"*"};
  EXPECT_TRUE(h.HandlesUserEvent("message"));
  EXPECT_TRUE(h.HandlesUserEvent("Anything.At-All"));
  EXPECT_TRUE(h.HandlesUserEvent(""));
}

TEST(EventHandlerSettings, NamedPatternMatchesMembersOnlyIgnoringCase) {
  EventHandlerSettings h;
  h.user_events = {"message", "join"};
  EXPECT_TRUE(h.HandlesUserEvent("Message"));
  EXPECT_TRUE(h.HandlesUserEvent("JOIN"));
  EXPECT_FALSE(h.HandlesUserEvent("leave"));
  EXPECT_FALSE(h.HandlesUserEvent("messages"));
  EXPECT_FALSE(h.HandlesUserEvent("*"));
}

TEST(EventHandlerSettings, EmptyPatternMatchesNoUserEvent) {
  EventHandlerSettings h;
  EXPECT_FALSE(h.HandlesUserEvent("message"));
}

TEST(EventHandlerSettings, SystemEventsFollowTheFlags) {
  EventHandlerSettings h;
  EXPECT_TRUE(h.HandlesSystemEvent(SystemEvent::kConnect));
  EXPECT_TRUE(h.HandlesSystemEvent(SystemEvent::kConnected));
  EXPECT_TRUE(h.HandlesSystemEvent(SystemEvent::kDisconnected));
  h.connect = false;
  h.disconnected = false;
  EXPECT_FALSE(h.HandlesSystemEvent(SystemEvent::kConnect));
  EXPECT_TRUE(h.HandlesSystemEvent(SystemEvent::kConnected));
  EXPECT_FALSE(h.HandlesSystemEvent(SystemEvent::kDisconnected));
}

TEST(EventHandlerResolve, ReplacesHubAndEvent) {
  EventHandlerSettings h;
  h.url_template = "http://localhost:7071/events/{hub}/{event}";
  EXPECT_EQ(h.Resolve("chat", "message"), "http://localhost:7071/events/chat/message");
  EXPECT_EQ(h.Resolve("chat", "validate"), "http://localhost:7071/events/chat/validate");
}

TEST(EventHandlerResolve, ReplacesEveryOccurrence) {
  EventHandlerSettings h;
  h.url_template = "https://h/{event}/{hub}?e={event}&h={hub}";
  EXPECT_EQ(h.Resolve("hub1", "ev"), "https://h/ev/hub1?e=ev&h=hub1");
}

TEST(EventHandlerResolve, PercentEncodesEverythingButUnreserved) {
  EventHandlerSettings h;
  h.url_template = "https://h/{hub}/{event}";
  EXPECT_EQ(h.Resolve("a`b,c[d]e.f_g", "x y/z?&=#%+~-._é"),
            "https://h/a%60b%2Cc%5Bd%5De.f_g/x%20y%2Fz%3F%26%3D%23%25%2B~-._%C3%A9");
}

TEST(EventHandlerResolve, ValuesThatLookLikePlaceholdersAreNotExpandedAgain) {
  EventHandlerSettings h;
  h.url_template = "https://h/{hub}/{event}";
  EXPECT_EQ(h.Resolve("{event}", "{hub}"), "https://h/%7Bevent%7D/%7Bhub%7D");
}

TEST(EventHandlerResolve, ExpressDefaultPathWithoutEventPlaceholder) {
  HubSettings s = MustParse({"*=http://127.0.0.1:3000/api/webpubsub/hubs/{hub}/"});
  const EventHandlerSettings* h = s.ForUserEvent("Chat", "message");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h->Resolve("Chat", "message"), "http://127.0.0.1:3000/api/webpubsub/hubs/Chat/");
  EXPECT_EQ(h->Resolve("chat", "validate"), "http://127.0.0.1:3000/api/webpubsub/hubs/chat/");
}

TEST(EventHandlerResolve, TemplateWithoutPlaceholdersIsReturnedAsIs) {
  EventHandlerSettings h;
  h.url_template = "https://app.azurewebsites.net/runtime/webhooks/webpubsub?code=k%2F1";
  EXPECT_EQ(h.Resolve("chat", "connect"), h.url_template);
}

}  // namespace
}  // namespace hubcast::server
