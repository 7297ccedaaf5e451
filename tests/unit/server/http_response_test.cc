#include "rest/http_message.h"
#include "server/http_connection.h"

#include <gtest/gtest.h>

#include <string>

namespace hubcast::server {
namespace {

bool Has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(SerializeResponse, TheFrontOwnsLengthDateAndConnection) {
  rest::HttpResponse r;
  r.status = 202;
  r.headers.Add("Content-Length", "999");
  r.headers.Add("Connection", "keep-alive");
  r.headers.Add("x-ms-error-code", "none");
  r.body = "abc";
  const std::string out = SerializeResponse(r, false, true, 1);
  EXPECT_EQ(out.rfind("HTTP/1.1 202 Accepted\r\n", 0), 0u) << out;
  EXPECT_TRUE(Has(out, "\r\nContent-Length: 3\r\n"));
  EXPECT_FALSE(Has(out, "999"));
  EXPECT_FALSE(Has(out, "keep-alive"));
  EXPECT_TRUE(Has(out, "\r\nConnection: close\r\n"));
  EXPECT_TRUE(Has(out, "\r\nDate: "));
  EXPECT_TRUE(Has(out, "\r\nx-ms-error-code: none\r\n"));
  EXPECT_EQ(out.substr(out.size() - 7), "\r\n\r\nabc");
}

TEST(SerializeResponse, HeadAnswersSayTheLengthWithoutTheBody) {
  rest::HttpResponse r;
  r.body = "hello";
  const std::string out = SerializeResponse(r, true, false, 1);
  EXPECT_TRUE(Has(out, "Content-Length: 5\r\n"));
  EXPECT_EQ(out.substr(out.size() - 4), "\r\n\r\n");
  EXPECT_FALSE(Has(out, "Connection:"));
}

TEST(SerializeResponse, NoContentHasNoLengthAndNoBody) {
  rest::HttpResponse r;
  r.status = 204;
  r.body = "ignored";
  const std::string out = SerializeResponse(r, false, false, 1);
  EXPECT_FALSE(Has(out, "Content-Length"));
  EXPECT_FALSE(Has(out, "ignored"));
}

TEST(SerializeResponse, SwitchingProtocolsKeepsConnectionUpgrade) {
  rest::HttpResponse r;
  r.status = 101;
  r.headers.Add("Upgrade", "websocket");
  r.headers.Add("Connection", "Upgrade");
  const std::string out = SerializeResponse(r, false, false, 1);
  EXPECT_EQ(out.rfind("HTTP/1.1 101 Switching Protocols\r\n", 0), 0u);
  EXPECT_TRUE(Has(out, "\r\nConnection: Upgrade\r\n"));
  EXPECT_FALSE(Has(out, "Content-Length"));
}

TEST(SerializeResponse, FieldsThatCouldEndTheHeadAreDropped) {
  rest::HttpResponse r;
  r.headers.Add("Location", "/a\r\nSet-Cookie: x=1");
  r.headers.Add("Bad\r\nName", "v");
  const std::string out = SerializeResponse(r, false, false, 1);
  EXPECT_FALSE(Has(out, "Set-Cookie"));
  EXPECT_FALSE(Has(out, "Bad"));
}

TEST(SerializeResponse, Http10ClientsAreToldTheConnectionStays) {
  const std::string out = SerializeResponse(rest::HttpResponse{}, false, false, 0);
  EXPECT_TRUE(Has(out, "\r\nConnection: keep-alive\r\n"));
}

}  // namespace
}  // namespace hubcast::server
