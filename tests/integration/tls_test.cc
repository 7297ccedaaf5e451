// TLS on the one port (hardening issue #9, "What to build"), against the real binary:
// `--tls-cert/--tls-key` serve https:// REST and wss:// clients (TLS 1.2+, ALPN http/1.1, a
// certificate chain), the connection string says https://, the certificate is reloaded on
// SIGHUP while existing connections stay up, and https:// event handlers are verified
// (`--upstream-ca` for a private CA).
//
// Certificates are made by each test at run time with the openssl command (a root CA, an
// intermediate, leaves): no key is committed.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tests/integration/jwt_util.h"
#include "tests/integration/process_util.h"
#include "tests/integration/server_fixture.h"
#include "tests/integration/test_stream.h"
#include "tests/integration/ws_client.h"
#include <arpa/inet.h>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <netinet/in.h>
#include <optional>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace hubcast::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

constexpr char kHub[] = "secure";
constexpr char kJson[] = "json.webpubsub.azure.v1";

// Runs /usr/bin/openssl with `args` in `dir`; false (with a failure) when it does not succeed.
bool OpenSsl(const fs::path& dir, std::vector<std::string> args) {
  SpawnOptions options;
  options.binary = "/usr/bin/openssl";
  for (std::string& a : args) {
    if (!a.empty() && a.front() == '@') a = (dir / a.substr(1)).string();  // a file in dir
  }
  options.args = std::move(args);
  options.log_path = dir / "openssl.log";
  std::string error;
  auto child = ChildProcess::Spawn(options, &error);
  if (!child) {
    ADD_FAILURE() << error;
    return false;
  }
  std::optional<ExitStatus> status = child->WaitForExit(seconds(30));
  if (!status || !status->Success()) {
    ADD_FAILURE() << "openssl " << options.args[0] << " failed: " << child->ReadLog();
    return false;
  }
  return true;
}

bool WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

// A root CA, an intermediate CA, and leaves for localhost / 127.0.0.1 signed by the
// intermediate. A leaf's chain file holds the leaf and the intermediate, so a client that
// trusts only the root verifies it only when the server sends the chain.
class TestPki {
 public:
  explicit TestPki(fs::path dir) : dir_(std::move(dir)) {
    fs::create_directories(dir_);
    WriteText(dir_ / "ca.ext",
              "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n");
    WriteText(dir_ / "leaf.ext",
              "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
              "extendedKeyUsage=serverAuth\n");
    ok_ = NewKey("root") &&
          OpenSsl(dir_, {"req", "-x509", "-new", "-key", "@root.key", "-out", "@root.pem", "-days",
                         "2", "-subj", "/CN=Hubcast Test Root"}) &&
          NewKey("intermediate") &&
          OpenSsl(dir_, {"req", "-new", "-key", "@intermediate.key", "-out", "@intermediate.csr",
                         "-subj", "/CN=Hubcast Test Intermediate"}) &&
          OpenSsl(dir_, {"x509", "-req", "-in", "@intermediate.csr", "-CA", "@root.pem", "-CAkey",
                         "@root.key", "-CAcreateserial", "-out", "@intermediate.pem", "-days", "2",
                         "-extfile", "@ca.ext"});
  }

  bool ok() const { return ok_; }
  fs::path root() const { return dir_ / "root.pem"; }

  struct Leaf {
    fs::path chain;  // leaf + intermediate
    fs::path key;
  };
  // A new leaf (new key) named `name`.
  std::optional<Leaf> NewLeaf(const std::string& name) {
    if (!NewKey(name) ||
        !OpenSsl(dir_, {"req", "-new", "-key", "@" + name + ".key", "-out", "@" + name + ".csr",
                        "-subj", "/CN=localhost"}) ||
        !OpenSsl(dir_, {"x509", "-req", "-in", "@" + name + ".csr", "-CA", "@intermediate.pem",
                        "-CAkey", "@intermediate.key", "-CAcreateserial", "-out",
                        "@" + name + ".pem", "-days", "2", "-extfile", "@leaf.ext"})) {
      return std::nullopt;
    }
    const fs::path chain = dir_ / (name + "-chain.pem");
    WriteText(chain, ReadFile(dir_ / (name + ".pem")).value_or("") +
                         ReadFile(dir_ / "intermediate.pem").value_or(""));
    return Leaf{chain, dir_ / (name + ".key")};
  }

 private:
  bool NewKey(const std::string& name) {
    return OpenSsl(dir_, {"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                          "-out", "@" + name + ".key"});
  }

  fs::path dir_;
  bool ok_ = false;
};

// A minimal HTTPS event handler on 127.0.0.1: answers abuse-protection OPTIONS with
// WebHook-Allowed-Origin: *, the connect event with a user id, other events with 200, and
// records the ce-type of every POST. One thread, blocking TLS, several requests per
// connection.
class HttpsEventHandler {
 public:
  HttpsEventHandler(const TestPki::Leaf& leaf) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    SSL_CTX_use_certificate_chain_file(ctx_, leaf.chain.c_str());
    SSL_CTX_use_PrivateKey_file(ctx_, leaf.key.c_str(), SSL_FILETYPE_PEM);
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 16);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~HttpsEventHandler() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
    SSL_CTX_free(ctx_);
  }

  int port() const { return port_; }
  std::vector<std::string> events() {
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  void Run() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      timeval tv{0, 500 * 1000};  // a kept-alive connection must not block the next one long
      ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, client);
      if (SSL_accept(ssl) == 1) Serve(ssl);
      SSL_free(ssl);
      ::close(client);
    }
  }

  void Serve(SSL* ssl) {
    std::string buffer;
    char chunk[4096];
    while (!stop_) {
      size_t end;
      while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
        int n = SSL_read(ssl, chunk, sizeof chunk);
        if (n <= 0) return;
        buffer.append(chunk, static_cast<size_t>(n));
      }
      std::string head = buffer.substr(0, end);
      buffer.erase(0, end + 4);
      std::string lower = head;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t length = 0;
      if (size_t at = lower.find("\r\ncontent-length:"); at != std::string::npos) {
        length = std::stoul(lower.substr(at + 17));
      }
      while (buffer.size() < length) {
        int n = SSL_read(ssl, chunk, sizeof chunk);
        if (n <= 0) return;
        buffer.append(chunk, static_cast<size_t>(n));
      }
      buffer.erase(0, length);
      std::string response;
      if (head.rfind("OPTIONS ", 0) == 0) {
        response = "HTTP/1.1 200 OK\r\nWebHook-Allowed-Origin: *\r\nContent-Length: 0\r\n\r\n";
      } else {
        std::string type;
        if (size_t at = lower.find("\r\nce-type:"); at != std::string::npos) {
          size_t eol = lower.find("\r\n", at + 2);
          type = std::string(Trim(head.substr(at + 10, eol - at - 10)));
        }
        {
          std::lock_guard lock(mu_);
          events_.push_back(type);
        }
        const std::string body =
            type == "azure.webpubsub.sys.connect" ? R"({"userId":"verified-upstream-user"})" : "";
        response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                   std::to_string(body.size()) + "\r\n\r\n" + body;
      }
      if (SSL_write(ssl, response.data(), static_cast<int>(response.size())) <= 0) return;
    }
  }

  static std::string_view Trim(std::string_view s) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.remove_suffix(1);
    return s;
  }

  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> events_;
};

class Tls : public ServerFixture {
 protected:
  void SetUp() override {
    ServerFixture::SetUp();
    pki_ = std::make_unique<TestPki>(dir_ / "pki");
    ASSERT_TRUE(pki_->ok());
  }

  // Starts a TLS server with `leaf`, copied to files the test may later overwrite.
  void StartTls(const TestPki::Leaf& leaf, const std::vector<std::string>& extra = {}) {
    cert_ = dir_ / "served-chain.pem";
    key_ = dir_ / "served.key";
    fs::copy_file(leaf.chain, cert_, fs::copy_options::overwrite_existing);
    fs::copy_file(leaf.key, key_, fs::copy_options::overwrite_existing);
    std::vector<std::string> args = {"--tls-cert", cert_.string(), "--tls-key", key_.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    std::optional<int> port = StartServer(args);
    ASSERT_TRUE(port.has_value());
    port_ = *port;
  }

  TlsClientOptions Trusting() const {
    TlsClientOptions o;
    o.ca_file = pki_->root().string();
    return o;
  }
  std::string Base() const { return "https://127.0.0.1:" + std::to_string(port_); }
  std::string ClientTarget() const {
    const std::string path = std::string("/client/hubs/") + kHub;
    return path + "?access_token=" + MintJwt(kAccessKey, Base() + path);
  }

  std::unique_ptr<WsClient> SecureClient(const std::string& subprotocol = "") {
    auto ws = std::make_unique<WsClient>();
    ws->UseTls(Trusting());
    EXPECT_TRUE(ws->Connect(port_, ClientTarget(), subprotocol)) << ws->error();
    return ws;
  }

  // A REST call over TLS on a connection of its own.
  std::optional<RawResponse> SecureRest(const std::string& method, const std::string& target,
                                        const std::string& body = "", std::string* alpn = nullptr,
                                        int* version = nullptr) {
    TestStream s;
    if (!s.ConnectTls(port_, Trusting())) {
      ADD_FAILURE() << s.error();
      return std::nullopt;
    }
    if (alpn) *alpn = s.alpn();
    if (version) *version = s.tls_version();
    std::string request = method + " " + target +
                          " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port_) +
                          "\r\nAuthorization: " + Bearer(Base(), target) +
                          "\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
    if (!s.Send(request)) {
      ADD_FAILURE() << s.error();
      return std::nullopt;
    }
    std::string buffer, why;
    auto r = ReadResponse(s, buffer, seconds(5), method == "HEAD", &why);
    if (!r) ADD_FAILURE() << why;
    return r;
  }

  int SendToHub(const std::string& body) {
    auto r = SecureRest("POST", std::string("/api/hubs/") + kHub + "/:send", body);
    return r ? r->status : 0;
  }

  std::string Fingerprint() {
    TestStream s;
    return s.ConnectTls(port_, Trusting()) ? s.peer_fingerprint() : "";
  }

  std::unique_ptr<TestPki> pki_;
  fs::path cert_, key_;
  int port_ = 0;
};

TEST_F(Tls, ServesHttpsRestAndSecureWebSocketsOnOnePort) {
  std::optional<TestPki::Leaf> leaf = pki_->NewLeaf("leaf");
  ASSERT_TRUE(leaf.has_value());
  StartTls(*leaf);
  EXPECT_NE(server()->ReadLog().find("Endpoint=https://127.0.0.1:" + std::to_string(port_) + ";"),
            std::string::npos)
      << "the connection string does not say https://";

  std::string alpn;
  int version = 0;
  auto health = SecureRest("GET", "/api/health", "", &alpn, &version);
  ASSERT_TRUE(health.has_value());
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(alpn, "http/1.1");
  EXPECT_GE(version, TLS1_2_VERSION);

  // wss://: a raw client gets a large message (many TLS records) sent over https.
  auto raw = SecureClient();
  const std::string big(200 * 1024, 'z');
  EXPECT_EQ(SendToHub(big), 202);
  std::optional<WsMessage> m = raw->Read(seconds(5));
  ASSERT_TRUE(m.has_value()) << raw->error();
  EXPECT_EQ(m->payload, big);

  // A JSON client's frames are read through TLS too: an action (refused: the token grants
  // no role) is answered with its ack.
  auto json = SecureClient(kJson);
  ASSERT_TRUE(json->ReadText(seconds(5)).has_value());  // connected
  ASSERT_TRUE(json->SendText(R"({"type":"joinGroup","group":"g","ackId":7})"));
  std::optional<std::string> ack = json->ReadText(seconds(5));
  ASSERT_TRUE(ack.has_value()) << json->error();
  EXPECT_NE(ack->find("\"ackId\":7"), std::string::npos) << *ack;
}

TEST_F(Tls, RefusesOldProtocolVersionsAndPlainHttp) {
  std::optional<TestPki::Leaf> leaf = pki_->NewLeaf("leaf");
  ASSERT_TRUE(leaf.has_value());
  StartTls(*leaf);
  TestStream old;
  TlsClientOptions tls11 = Trusting();
  tls11.max_version = TLS1_1_VERSION;
  EXPECT_FALSE(old.ConnectTls(port_, tls11, seconds(5))) << "TLS 1.1 was accepted";

  TestStream plain;
  ASSERT_TRUE(plain.Connect(port_));
  ASSERT_TRUE(plain.Send("GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string got;
  EXPECT_TRUE(WaitForClose(plain, seconds(5)));
  // The server is unharmed.
  auto health = SecureRest("GET", "/api/health");
  ASSERT_TRUE(health.has_value());
  EXPECT_EQ(health->status, 200);
}

TEST_F(Tls, CertificateIsReloadedOnSighupWhileConnectionsStay) {
  std::optional<TestPki::Leaf> first = pki_->NewLeaf("first");
  std::optional<TestPki::Leaf> second = pki_->NewLeaf("second");
  ASSERT_TRUE(first && second);
  StartTls(*first);
  const std::string before = Fingerprint();
  ASSERT_FALSE(before.empty());
  auto client = SecureClient();
  ASSERT_EQ(SendToHub("before the reload"), 202);
  ASSERT_TRUE(client->Read(seconds(5)).has_value());

  // Renew: new files in place, then SIGHUP.
  fs::copy_file(second->chain, cert_, fs::copy_options::overwrite_existing);
  fs::copy_file(second->key, key_, fs::copy_options::overwrite_existing);
  ASSERT_EQ(::kill(server()->pid(), SIGHUP), 0);
  std::string after;
  const auto deadline = Clock::now() + seconds(10);
  while ((after = Fingerprint()) == before && Clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_NE(after, before) << "new connections still get the old certificate";
  EXPECT_FALSE(after.empty());

  // The connection made before the reload is still served.
  ASSERT_EQ(SendToHub("after the reload"), 202);
  std::optional<WsMessage> m = client->Read(seconds(5));
  ASSERT_TRUE(m.has_value()) << "the old connection dropped: " << client->error();
  EXPECT_EQ(m->payload, "after the reload");
  EXPECT_EQ(client->stream().peer_fingerprint(), before);

  // A broken renewal leaves the current certificate in use.
  WriteText(key_, "not a key\n");
  ASSERT_EQ(::kill(server()->pid(), SIGHUP), 0);
  const auto log_deadline = Clock::now() + seconds(10);
  while (server()->ReadLog().find("TLS certificate not reloaded") == std::string::npos &&
         Clock::now() < log_deadline) {
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_NE(server()->ReadLog().find("TLS certificate not reloaded"), std::string::npos);
  EXPECT_EQ(Fingerprint(), after);
}

TEST_F(Tls, HttpsEventHandlersAreVerifiedAgainstTheUpstreamCa) {
  std::optional<TestPki::Leaf> handler_leaf = pki_->NewLeaf("handler");
  std::optional<TestPki::Leaf> leaf = pki_->NewLeaf("leaf");
  ASSERT_TRUE(handler_leaf && leaf);
  HttpsEventHandler handler(*handler_leaf);
  const std::string handler_arg =
      std::string(kHub) + "=https://127.0.0.1:" + std::to_string(handler.port()) + "/hooks/{event}";

  // Without the private CA the handler's certificate is not trusted: the connect fails.
  StartTls(*leaf, {"--event-handler", handler_arg});
  {
    WsClient ws;
    ws.UseTls(Trusting());
    EXPECT_FALSE(ws.Connect(port_, ClientTarget(), kJson));
    EXPECT_EQ(ws.http_status(), 500) << ws.error();
  }
  EXPECT_TRUE(handler.events().empty()) << "an unverified handler was called";

  // With --upstream-ca it is.
  StartTls(*leaf, {"--event-handler", handler_arg, "--upstream-ca", pki_->root().string()});
  auto ws = SecureClient(kJson);
  std::optional<std::string> connected = ws->ReadText(seconds(10));
  ASSERT_TRUE(connected.has_value()) << ws->error();
  EXPECT_NE(connected->find("verified-upstream-user"), std::string::npos) << *connected;
  std::vector<std::string> events = handler.events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.front(), "azure.webpubsub.sys.connect");
}

TEST_F(Tls, UnreadableCertificateOrCaStopsStartUp) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"},
        std::vector<std::string>{"--upstream-ca", "/nonexistent-ca.pem"}}) {
    SpawnOptions options;
    options.binary = Binary();
    options.args = {"serve", "--port", "0", "--data-dir", (dir_ / "refused").string()};
    options.args.insert(options.args.end(), args.begin(), args.end());
    options.log_path = dir_ / "refused.log";
    std::string error;
    auto child = ChildProcess::Spawn(options, &error);
    ASSERT_NE(child, nullptr) << error;
    std::optional<ExitStatus> status = child->WaitForExit(seconds(10));
    ASSERT_TRUE(status.has_value()) << "started with " << args[0] << " unreadable";
    EXPECT_TRUE(status->exited && status->code == 2) << status->ToString();
    EXPECT_NE(child->ReadLog().find("nonexistent"), std::string::npos) << child->ReadLog();
  }
}

}  // namespace
}  // namespace hubcast::testing
