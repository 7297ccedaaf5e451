// The live dashboard (issue #12, part 4) in a real browser: headless Chromium (Debian's
// `chromium`) opens /dashboard on a running `hubcast serve` with traffic, and the test asks
// the page - over the DevTools protocol, with the tests' own WebSocket client - what it shows:
// the hub's connections and message counts as the test made them, and a message sent during
// the test in the live trace. It saves a screenshot as a test artifact
// (<build>/tests/artifacts/dashboard.png). Skipped where chromium is not installed.
//
// Chromium is kept off every network but loopback: every host name resolves to nothing
// except 127.0.0.1, and its background services are off.
#include "base/json.h"

#include <openssl/evp.h>

#include "tests/integration/admin_util.h"
#include "tests/integration/jwt_util.h"
#include "tests/integration/process_util.h"
#include "tests/integration/server_fixture.h"
#include "tests/integration/ws_client.h"
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#ifndef HUBCAST_BUILD_DIR
#define HUBCAST_BUILD_DIR "."
#endif

namespace hubcast::testing {
namespace {

using std::chrono::seconds;
constexpr char kHub[] = "dash";
constexpr char kJson[] = "json.webpubsub.azure.v1";
constexpr auto kWait = seconds(30);

std::string FindChromium() {
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (std::filesystem::exists(path)) return path;
  }
  return "";
}

std::string Base64Decode(const std::string& text) {
  std::string out(text.size() / 4 * 3 + 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return "";
  size_t pad = 0;
  if (!text.empty() && text.back() == '=')
    pad = text.size() > 1 && text[text.size() - 2] == '=' ? 2 : 1;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

// One page of a browser, driven over the DevTools protocol.
class DevTools {
 public:
  bool Attach(int port, std::string* error) {
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    static const std::regex kPage(
        R"re("type":\s*"page"[^}]*"webSocketDebuggerUrl":\s*"ws://[^/]+(/devtools/page/[^"]+)")re");
    while (std::chrono::steady_clock::now() < deadline) {
      HttpResponse list = HttpRequest(port, "GET", "/json/list");
      std::smatch m;
      if (list.status == 200 && std::regex_search(list.body, m, kPage)) {
        if (ws_.Connect(port, m[1])) return true;
        *error = ws_.error();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (error->empty()) *error = "no page target appeared";
    return false;
  }
  // Sends a command and returns its answer's text (the whole message).
  std::optional<std::string> Call(const std::string& method, const std::string& params) {
    const int id = ++next_id_;
    if (!ws_.SendText("{\"id\":" + std::to_string(id) + ",\"method\":\"" + method +
                      "\",\"params\":" + params + "}")) {
      return std::nullopt;
    }
    const std::string marker = "\"id\":" + std::to_string(id) + ",";
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = ws_.Read(seconds(5));
      if (!m) {
        if (!ws_.connected()) return std::nullopt;
        continue;
      }
      if (m->payload.find(marker) != std::string::npos) return m->payload;
    }
    return std::nullopt;
  }
  // The string value of a JavaScript expression in the page.
  std::string Eval(const std::string& expression) {
    std::string quoted = JwtQuote(expression);
    auto answer =
        Call("Runtime.evaluate", "{\"expression\":" + quoted + ",\"returnByValue\":true}");
    if (!answer) return "<no answer>";
    auto v = json::Parse(*answer);
    if (!v.ok()) return "<bad answer>";
    const json::Value* result = v->Find("result");
    result = result ? result->Find("result") : nullptr;
    const json::Value* value = result ? result->Find("value") : nullptr;
    return value && value->is_string() ? value->str() : "<not a string>";
  }
  // Polls `expression` until it yields `want`; the last value otherwise.
  std::string WaitFor(const std::string& expression, const std::string& want) {
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (std::chrono::steady_clock::now() < deadline) {
      got = Eval(expression);
      if (got == want) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return got;
  }

 private:
  WsClient ws_;
  int next_id_ = 0;
};

class Dashboard : public ServerFixture {
 protected:
  std::string Base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::unique_ptr<WsClient> Connect(const std::string& user) {
    JwtClaims claims;
    claims.audience = Base() + "/client/hubs/" + kHub;
    claims.subject = user;
    claims.roles = {"webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"};
    auto c = std::make_unique<WsClient>();
    EXPECT_TRUE(c->Connect(
        port_, std::string("/client/hubs/") + kHub + "?access_token=" + MintJwt(kAccessKey, claims),
        kJson))
        << c->error();
    return c;
  }
  int RestSend(const std::string& text) {
    const std::string target = std::string("/api/hubs/") + kHub + "/:send?api-version=2024-12-01";
    return HttpRequest(port_, "POST", target,
                       {{"Authorization", Bearer(Base(), target)}, {"Content-Type", "text/plain"}},
                       text)
        .status;
  }

  int port_ = 0;
};

TEST_F(Dashboard, ShowsTheHubsNumbersAndTracesAMessageInChromium) {
  const std::string chromium = FindChromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (deploy/install-deps.sh)";
  std::optional<int> port = StartServer({"--admin-bind", "127.0.0.1:0"});
  ASSERT_TRUE(port.has_value());
  port_ = *port;
  std::optional<int> admin = WaitForAdminPort(*server(), kWait);
  ASSERT_TRUE(admin.has_value());

  // Traffic before the page opens: two clients in a group, three group messages.
  auto a = Connect("alice");
  auto b = Connect("bob");
  for (auto* c : {a.get(), b.get()}) {
    ASSERT_TRUE(ReadUntil(*c, "\"connected\""));
    ASSERT_TRUE(c->SendText(R"({"type":"joinGroup","group":"room","ackId":1})"));
    ASSERT_TRUE(ReadUntil(*c, "\"ackId\":1"));
  }
  for (int n = 1; n <= 3; ++n) {
    const std::string text = "before-" + std::to_string(n);
    ASSERT_TRUE(a->SendText(R"({"type":"sendToGroup","group":"room","dataType":"text","data":")" +
                            text + "\"}"));
    ASSERT_TRUE(ReadUntil(*b, text));
  }

  const std::string admin_base = "http://127.0.0.1:" + std::to_string(*admin);
  const std::string url = admin_base + "/dashboard?hub=" + kHub +
                          "&access_token=" + MintJwt(kAccessKey, admin_base + "/dashboard");
  const std::filesystem::path profile = dir_ / "chromium-profile";
  SpawnOptions options;
  options.binary = chromium;
  options.args = {
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--no-default-browser-check",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-breakpad",
      "--disable-domain-reliability",
      "--no-pings",
      "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
      "--proxy-server=direct://",
      "--user-data-dir=" + profile.string(),
      "--remote-debugging-address=127.0.0.1",
      "--remote-debugging-port=0",
      "--window-size=1400,1200",
      "--hide-scrollbars",
      url};
  options.log_path = dir_ / "chromium.log";
  std::string error;
  std::unique_ptr<ChildProcess> browser = ChildProcess::Spawn(options, &error);
  ASSERT_TRUE(browser) << error;
  // The DevTools port, from the profile (the browser chose it).
  const std::string port_file = (profile / "DevToolsActivePort").string();
  ASSERT_TRUE(WaitForFile(port_file, kWait, browser.get())) << browser->ReadLog();
  std::optional<int> devtools_port;
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (!devtools_port && std::chrono::steady_clock::now() < deadline) {
    auto text = ReadFile(port_file);
    if (text && text->find('\n') != std::string::npos) devtools_port = std::atoi(text->c_str());
    if (!devtools_port) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(devtools_port.has_value());
  DevTools page;
  ASSERT_TRUE(page.Attach(*devtools_port, &error)) << error << browser->ReadLog();

  const std::string row = std::string("document.querySelector('tr[data-hub=\"") + kHub + "\"] .";
  EXPECT_EQ(page.WaitFor(row + "local')?.textContent ?? ''", "2"), "2");
  EXPECT_EQ(page.WaitFor(row + "connections')?.textContent ?? ''", "2"), "2");
  // 2 joins + 3 group messages received; 3 messages x 2 members delivered.
  EXPECT_EQ(page.WaitFor(row + "received')?.textContent ?? ''", "5"), "5");
  EXPECT_EQ(page.WaitFor(row + "delivered')?.textContent ?? ''", "6"), "6");
  EXPECT_EQ(page.WaitFor(row + "groups')?.textContent ?? ''", "1"), "1");
  EXPECT_EQ(page.WaitFor("document.getElementById('trace-state').textContent",
                         std::string("tracing hub ") + kHub),
            std::string("tracing hub ") + kHub);

  // A message sent while the page watches shows in the live trace, with its payload.
  ASSERT_EQ(RestSend("hello-live-trace"), 202);
  ASSERT_TRUE(ReadUntil(*a, "hello-live-trace"));
  ASSERT_TRUE(a->SendText(R"({"type":"sendToGroup","group":"room","dataType":"text","data":")" +
                          std::string(300, 'x') + "\"}"));
  EXPECT_EQ(page.WaitFor("String(document.getElementById('trace').textContent.includes("
                         "'hello-live-trace'))",
                         "true"),
            "true");
  EXPECT_EQ(page.WaitFor("String(document.getElementById('trace').textContent.includes("
                         "'cut short'))",
                         "true"),
            "true");
  EXPECT_EQ(page.WaitFor(row + "delivered')?.textContent ?? ''", "10"), "10");
  // The chart has a history to draw (one point a second).
  EXPECT_EQ(
      page.WaitFor("String(document.getElementById('chart-max').textContent.length > 0)", "true"),
      "true");

  // The artifact: a screenshot of the page as the test left it.
  auto shot = page.Call("Page.captureScreenshot", R"({"format":"png"})");
  ASSERT_TRUE(shot.has_value());
  auto v = json::Parse(*shot);
  ASSERT_TRUE(v.ok());
  const json::Value* data = v->Find("result") ? v->Find("result")->Find("data") : nullptr;
  ASSERT_TRUE(data && data->is_string());
  const std::string png = Base64Decode(data->str());
  ASSERT_GT(png.size(), 1000u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
  const std::filesystem::path artifacts =
      std::filesystem::path(HUBCAST_BUILD_DIR) / "tests" / "artifacts";
  std::filesystem::create_directories(artifacts);
  std::ofstream(artifacts / "dashboard.png", std::ios::binary) << png;
  std::cout << "screenshot: " << (artifacts / "dashboard.png").string() << std::endl;
  browser->Stop(seconds(10));
}

}  // namespace
}  // namespace hubcast::testing
