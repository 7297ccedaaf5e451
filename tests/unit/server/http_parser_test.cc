#include "server/http_parser.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace hubcast::server {
namespace {

using State = HttpRequestParser::State;

HttpParserLimits SmallLimits() {
  HttpParserLimits l;
  l.max_request_line = 64;
  l.max_header_count = 8;
  l.max_head_bytes = 512;
  l.max_chunk_line = 32;
  l.max_body_bytes = 100;
  return l;
}

// Feeds `text` in one call; `consumed` is what the parser took.
struct Parsed {
  HttpRequestParser parser;
  size_t consumed = 0;
};

Parsed Parse(std::string_view text, HttpParserLimits limits = {}) {
  Parsed p{HttpRequestParser(limits), 0};
  p.consumed = p.parser.Feed(text);
  return p;
}

// Feeds one byte at a time until the parser stops; returns bytes consumed.
size_t Trickle(HttpRequestParser& parser, std::string_view text) {
  size_t used = 0;
  while (used < text.size() && parser.state() == State::kNeedMore) {
    used += parser.Feed(text.substr(used, 1));
  }
  return used;
}

// The same input must give the same outcome however it is split.
void ExpectSameWhenTrickled(std::string_view text, HttpParserLimits limits = {}) {
  Parsed whole = Parse(text, limits);
  HttpRequestParser bytes(limits);
  size_t used = Trickle(bytes, text);
  EXPECT_EQ(bytes.state(), whole.parser.state()) << text;
  // After an error what was consumed does not matter: the connection closes.
  if (!whole.parser.failed()) {
    EXPECT_EQ(used, whole.consumed) << text;
  }
  EXPECT_EQ(bytes.error().status, whole.parser.error().status) << text;
  EXPECT_EQ(bytes.request().body, whole.parser.request().body) << text;
}

void ExpectError(std::string_view text, int status, HttpParserLimits limits = {}) {
  Parsed p = Parse(text, limits);
  EXPECT_EQ(p.parser.state(), State::kError) << text;
  EXPECT_EQ(p.parser.error().status, status) << text << " -> " << p.parser.error().message;
  EXPECT_NE(p.parser.error().code, nullptr);
  EXPECT_FALSE(p.parser.error().message.empty());
  ExpectSameWhenTrickled(text, limits);
}

// --- request line and fields ------------------------------------------------------------------

TEST(HttpParser, ParsesAGetWithItsHeaderFieldsInOrder) {
  Parsed p = Parse("GET /api/health?x=1 HTTP/1.1\r\nHost: h:80\r\nX-A: 1\r\nx-a:  2 \r\n\r\n");
  ASSERT_TRUE(p.parser.complete());
  const rest::HttpRequest& r = p.parser.request();
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/api/health?x=1");
  EXPECT_EQ(r.version_minor, 1);
  EXPECT_EQ(r.host, "h:80");
  ASSERT_EQ(r.headers.size(), 3u);
  EXPECT_EQ(r.headers.Get("x-A"), "1");
  EXPECT_EQ(r.headers.fields()[2].second, "2");  // OWS trimmed
  EXPECT_TRUE(r.body.empty());
  EXPECT_TRUE(p.parser.keep_alive());
}

TEST(HttpParser, IncompleteHeadNeedsMoreAndNeverCompletes) {
  Parsed p = Parse("GET / HTTP/1.1\r\nHost: h\r\n");
  EXPECT_EQ(p.parser.state(), State::kNeedMore);
  EXPECT_TRUE(p.parser.started());
  EXPECT_FALSE(p.parser.head_complete());
  HttpRequestParser fresh;
  EXPECT_FALSE(fresh.started());
}

TEST(HttpParser, StopsAfterOneRequestSoPipelinedRequestsComeInOrder) {
  const std::string first = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
  const std::string second = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string both = first + second;
  HttpRequestParser p;
  size_t used = p.Feed(both);
  EXPECT_EQ(used, first.size());
  ASSERT_TRUE(p.complete());
  EXPECT_EQ(p.TakeRequest().body, "abc");
  p.Reset();
  EXPECT_EQ(p.Feed(std::string_view(both).substr(used)), second.size());
  ASSERT_TRUE(p.complete());
  EXPECT_EQ(p.request().target, "/b");
}

TEST(HttpParser, SkipsEmptyLinesBeforeTheRequestLine) {
  Parsed p = Parse("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
  EXPECT_TRUE(p.parser.complete());
}

TEST(HttpParser, RejectsABareLineFeed) {
  ExpectError("GET / HTTP/1.1\nHost: h\r\n\r\n", 400);
  ExpectError("GET / HTTP/1.1\r\nHost: h\n\r\n", 400);
}

TEST(HttpParser, RejectsACarriageReturnInsideALine) {
  ExpectError("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400);
}

TEST(HttpParser, RejectsBinaryNoiseAtItsFirstByte) {
  // A TLS ClientHello on the plain port fails at once instead of waiting for a line end.
  HttpRequestParser p;
  p.Feed(std::string_view("\x16\x03\x01\x02\x00", 5));
  EXPECT_TRUE(p.failed());
  EXPECT_EQ(p.error().status, 400);
}

TEST(HttpParser, RejectsMalformedRequestLines) {
  ExpectError("GET /\r\nHost: h\r\n\r\n", 400);               // no version
  ExpectError("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400);     // two spaces
  ExpectError("GET / HTTP/1.1 \r\nHost: h\r\n\r\n", 400);     // trailing space
  ExpectError("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400);      // not a token
  ExpectError("GET / HTTP/1.x\r\nHost: h\r\n\r\n", 400);      // version digits
  ExpectError("GET / http/1.1\r\nHost: h\r\n\r\n", 400);      // case-sensitive name
  ExpectError("GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400);  // DEL in the target
}

TEST(HttpParser, AnswersOtherMajorVersionsWith505) {
  ExpectError("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505);
  ExpectError("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505);
}

TEST(HttpParser, AcceptsHttp10WithoutHostAndClosesAfterIt) {
  Parsed p = Parse("GET / HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(p.parser.complete());
  EXPECT_EQ(p.parser.request().version_minor, 0);
  EXPECT_FALSE(p.parser.keep_alive());
  EXPECT_TRUE(Parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").parser.keep_alive());
}

TEST(HttpParser, RejectsHttp11WithoutHostOrWithTwo) {
  ExpectError("GET / HTTP/1.1\r\n\r\n", 400);
  ExpectError("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
}

TEST(HttpParser, ConnectionCloseEndsKeepAlive) {
  EXPECT_FALSE(Parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n").parser.keep_alive());
  EXPECT_FALSE(Parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n")
                   .parser.keep_alive());
}

TEST(HttpParser, ReportsUpgradeRequests) {
  Parsed p = Parse(
      "GET /client HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: "
      "websocket\r\n\r\n");
  ASSERT_TRUE(p.parser.complete());
  EXPECT_TRUE(p.parser.wants_upgrade());
  EXPECT_FALSE(Parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n").parser.wants_upgrade());
}

TEST(HttpParser, RejectsWhitespaceBeforeTheColon) {
  ExpectError("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400);
  ExpectError("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding\t: chunked\r\n\r\n", 400);
}

TEST(HttpParser, RejectsObsoleteLineFolding) {
  ExpectError("GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n", 400);
}

TEST(HttpParser, RejectsFieldsWithoutColonOrWithControlCharacters) {
  ExpectError("GET / HTTP/1.1\r\nHost: h\r\nJunk\r\n\r\n", 400);
  // The whole literal, NUL included (sizeof counts its terminator).
  static constexpr char kNulInValue[] = "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n";
  ExpectError(std::string(kNulInValue, sizeof kNulInValue - 1), 400);
  ExpectError("GET / HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n", 400);
}

TEST(HttpParser, AcceptsObsTextInFieldValues) {
  Parsed p = Parse("GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\t!\r\n\r\n");
  ASSERT_TRUE(p.parser.complete());
  EXPECT_EQ(p.parser.request().headers.Get("X"), "caf\xc3\xa9\t!");
}

// --- limits -----------------------------------------------------------------------------------

TEST(HttpParser, RefusesALongRequestLineWith414BeforeItEnds) {
  std::string text = "GET /" + std::string(100, 'a');  // no line end yet
  Parsed p = Parse(text, SmallLimits());
  EXPECT_TRUE(p.parser.failed());
  EXPECT_EQ(p.parser.error().status, 414);
  ExpectSameWhenTrickled(text, SmallLimits());
  // Exactly at the limit is fine.
  std::string line = "GET /" + std::string(64 - 14, 'a') + " HTTP/1.1";
  ASSERT_EQ(line.size(), 64u);
  EXPECT_TRUE(Parse(line + "\r\nHost: h\r\n\r\n", SmallLimits()).parser.complete());
}

TEST(HttpParser, RefusesTooManyHeaderFieldsWith431) {
  std::string text = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 8; ++i) text += "X-" + std::to_string(i) + ": v\r\n";
  ExpectError(text + "\r\n", 431, SmallLimits());
}

TEST(HttpParser, RefusesAHugeHeadWith431WithoutBufferingIt) {
  std::string text = "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(1024 * 1024, 'a');
  Parsed p = Parse(text);
  EXPECT_TRUE(p.parser.failed());
  EXPECT_EQ(p.parser.error().status, 431);
  HttpRequestParser trickled(SmallLimits());
  EXPECT_LE(Trickle(trickled, text), 513u);  // stops right past the limit
  EXPECT_EQ(trickled.error().status, 431);
}

// --- Content-Length ---------------------------------------------------------------------------

TEST(HttpParser, ReadsAContentLengthBody) {
  std::string text = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world";
  Parsed p = Parse(text);
  ASSERT_TRUE(p.parser.complete());
  EXPECT_EQ(p.parser.request().body, "hello world");
  ExpectSameWhenTrickled(text);
}

TEST(HttpParser, ABodyArrivingInPiecesIsNotCompleteUntilItsLastByte) {
  HttpRequestParser p;
  p.Feed("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab");
  EXPECT_TRUE(p.head_complete());
  EXPECT_EQ(p.state(), State::kNeedMore);
  EXPECT_EQ(p.body_received(), 2u);
  p.Feed("cd");
  EXPECT_TRUE(p.complete());
}

TEST(HttpParser, ARequestWithoutLengthHasNoBody) {
  Parsed p = Parse("POST /x HTTP/1.1\r\nHost: h\r\n\r\nGET");
  ASSERT_TRUE(p.parser.complete());
  EXPECT_TRUE(p.parser.request().body.empty());
  EXPECT_FALSE(p.parser.has_body());
  EXPECT_EQ(p.consumed, 29u);  // "GET" is left for the next request
}

TEST(HttpParser, AcceptsRepeatedIdenticalContentLengths) {
  EXPECT_TRUE(
      Parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2, 2\r\n\r\nab").parser.complete());
  EXPECT_TRUE(
      Parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab")
          .parser.complete());
}

TEST(HttpParser, RejectsTwoDifferentContentLengths) {
  ExpectError("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
              400);
  ExpectError("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2, 3\r\n\r\nabc", 400);
}

TEST(HttpParser, RejectsContentLengthsThatAreNotDigits) {
  for (const char* v : {"-1", "+5", "5a", "0x10", "1 2", "", "1.0", ","}) {
    ExpectError(std::string("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ") + v + "\r\n\r\n",
                400);
  }
}

TEST(HttpParser, RefusesAContentLengthOverTheLimitBeforeTheBody) {
  ExpectError("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n", 413, SmallLimits());
  EXPECT_TRUE(
      Parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'x'),
            SmallLimits())
          .parser.complete());
}

TEST(HttpParser, RefusesAnAstronomicalContentLengthWith413) {
  ExpectError("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100000000000000000000000\r\n\r\n",
              413);
}

TEST(HttpParser, BodyMemoryGrowsWithBytesReceivedNotWithTheDeclaredLength) {
  HttpRequestParser p;  // 1 MiB limit
  p.Feed("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048576\r\n\r\nabcdef");
  EXPECT_EQ(p.body_received(), 6u);
  EXPECT_LT(p.request().body.capacity(), 1024u);
}

// --- Transfer-Encoding ------------------------------------------------------------------------

const char kChunked[] =
    "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5;name=value\r\nhello\r\n"
    "6 ; quoted=\"a;b\"\r\n world\r\n"
    "0\r\nX-Trailer: t\r\n\r\n";

TEST(HttpParser, ReadsAChunkedBodyWithExtensionsAndTrailers) {
  Parsed p = Parse(kChunked);
  ASSERT_TRUE(p.parser.complete()) << p.parser.error().message;
  EXPECT_EQ(p.parser.request().body, "hello world");
  EXPECT_EQ(p.consumed, sizeof kChunked - 1);
  EXPECT_FALSE(p.parser.request().headers.Has("X-Trailer"));  // trailers are dropped
  EXPECT_TRUE(p.parser.keep_alive());
  ExpectSameWhenTrickled(kChunked);
}

TEST(HttpParser, AcceptsChunkedInAnyCaseAndUpperCaseHex) {
  Parsed p = Parse(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n");
  ASSERT_TRUE(p.parser.complete());
  EXPECT_EQ(p.parser.request().body, "0123456789");
}

TEST(HttpParser, ATruncatedChunkedBodyNeverCompletes) {
  const std::string full(kChunked);
  for (size_t cut = full.find("\r\n\r\n") + 4; cut < full.size(); ++cut) {
    Parsed p = Parse(std::string_view(full).substr(0, cut));
    EXPECT_EQ(p.parser.state(), State::kNeedMore) << cut;
  }
}

TEST(HttpParser, RejectsAnInvalidChunkSizeAndDoesNotReadWhatFollows) {
  const std::string smuggled =
      "POST /api/hubs/h/:send HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi";
  const std::string text =
      "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + smuggled;
  Parsed p = Parse(text);
  EXPECT_TRUE(p.parser.failed());
  EXPECT_EQ(p.parser.error().status, 400);
  EXPECT_LE(p.consumed, text.size() - smuggled.size());
  ExpectSameWhenTrickled(text);
  // Garbage fails at once, without waiting for its line to end.
  HttpRequestParser q;
  q.Feed("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-");
  EXPECT_TRUE(q.failed());
}

TEST(HttpParser, RejectsMalformedChunkSizeLines) {
  const std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const char* line : {"\r\n", "0x5\r\n", "+5\r\n", "5 5\r\n", "5\x01\r\n", ";a\r\n"}) {
    ExpectError(head + line, 400);
  }
  ExpectError(head + "5;" + std::string(100, 'e') + "\r\n", 400, SmallLimits());
}

TEST(HttpParser, RejectsChunkDataNotFollowedByCrlf) {
  const std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  ExpectError(head + "3\r\nabcd\r\n0\r\n\r\n", 400);
  ExpectError(head + "3\r\nabc\n0\r\n\r\n", 400);
}

TEST(HttpParser, RefusesAChunkedBodyOverTheLimit) {
  const std::string head = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  std::string endless = head;
  for (int i = 0; i < 20; ++i) endless += "a\r\n0123456789\r\n";
  ExpectError(endless, 413, SmallLimits());
  ExpectError(head + "FFFFFFFFFFFFFFFFFFFFFFFF\r\n", 413);
  ExpectError(head + "65\r\n", 413, SmallLimits());  // 101 bytes, decided from the size
}

TEST(HttpParser, ChunkedWithContentLengthIgnoresTheLengthAndClosesAfter) {
  Parsed p = Parse(
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
      "2\r\nab\r\n0\r\n\r\n");
  ASSERT_TRUE(p.parser.complete());
  EXPECT_EQ(p.parser.request().body, "ab");
  EXPECT_FALSE(p.parser.keep_alive());
}

TEST(HttpParser, RefusesTransferCodingsOtherThanChunkedWith501) {
  ExpectError("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity, chunked\r\n\r\n", 501);
  ExpectError(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: "
      "chunked\r\n\r\n",
      501);
}

TEST(HttpParser, RejectsTransferEncodingWhoseFinalCodingIsNotChunked) {
  ExpectError("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 400);
  ExpectError("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400);
  ExpectError("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 400);
  ExpectError("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n", 400);
  ExpectError("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 400);
}

TEST(HttpParser, RejectsChunkedAppliedTwice) {
  ExpectError("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400);
}

TEST(HttpParser, RejectsTransferEncodingInHttp10) {
  ExpectError("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
}

TEST(HttpParser, TrailerFieldsCountTowardsTheHeadLimits) {
  std::string text = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  for (int i = 0; i < 8; ++i) text += "T" + std::to_string(i) + ": v\r\n";
  ExpectError(text + "\r\n", 431, SmallLimits());
  ExpectError(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer: x\r\n\r\n",
      400);
}

// --- Expect -----------------------------------------------------------------------------------

TEST(HttpParser, ReportsExpect100ContinueOnlyWhenABodyFollows) {
  HttpRequestParser p;
  p.Feed("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n");
  EXPECT_TRUE(p.head_complete());
  EXPECT_TRUE(p.expects_continue());
  EXPECT_FALSE(
      Parse("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n").parser.expects_continue());
}

TEST(HttpParser, RefusesOtherExpectationsWith417) {
  ExpectError("POST / HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\nContent-Length: 0\r\n\r\n", 417);
}

// --- all of it, split anywhere ----------------------------------------------------------------

TEST(HttpParser, AnySplitOfTheInputGivesTheSameOutcome) {
  const std::vector<std::string> inputs = {
      kChunked,
      "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n",
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX",
      "GET / HTTP/1.1\r\nHost: h\r\nX: \x01\r\n\r\n",
  };
  std::mt19937 random(42);
  for (const std::string& text : inputs) {
    Parsed whole = Parse(text);
    for (int round = 0; round < 50; ++round) {
      HttpRequestParser p;
      size_t used = 0;
      while (used < text.size() && p.state() == State::kNeedMore) {
        size_t n = 1 + random() % 7;
        used += p.Feed(std::string_view(text).substr(used, n));
      }
      ASSERT_EQ(p.state(), whole.parser.state()) << text;
      if (!p.failed()) {
        ASSERT_EQ(used, whole.consumed) << text;
      }
      ASSERT_EQ(p.request().body, whole.parser.request().body);
    }
  }
}

}  // namespace
}  // namespace hubcast::server
