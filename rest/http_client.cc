#include "rest/http_client.h"

#include "base/strings.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <set>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>

namespace hubcast::rest {

std::optional<std::string> HttpClientResponse::Header(std::string_view name,
                                                      std::string_view separator) const {
  std::optional<std::string> out;
  for (const auto& [k, v] : headers) {
    if (!EqualsIgnoreCase(k, name)) continue;
    if (out) {
      out->append(separator);
      out->append(v);
    } else {
      out = v;
    }
  }
  return out;
}

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kReadable = EPOLLIN | EPOLLRDHUP;
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxChunkSizeLine = 1024;
// How long a resolved host name is used before it is resolved again.
constexpr std::chrono::seconds kResolveTtl{30};
// Idle connections are checked for expiry at least this often.
constexpr std::chrono::milliseconds kSweepEvery{500};

// ---- URLs ---------------------------------------------------------------------------------

struct Url {
  bool tls = false;
  std::string host;  // without brackets
  uint16_t port = 0;
  std::string host_header;  // as the Host header wants it
  std::string target;       // path and query
  std::string origin;       // scheme://host:port, lower case: the pool key
};

bool HostChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
}

std::optional<Url> ParseUrl(std::string_view s) {
  Url url;
  if (StartsWithIgnoreCase(s, "http://")) {
    s.remove_prefix(7);
  } else if (StartsWithIgnoreCase(s, "https://")) {
    url.tls = true;
    s.remove_prefix(8);
  } else {
    return std::nullopt;
  }
  const size_t end = s.find_first_of("/?#");
  std::string_view authority = s.substr(0, end);
  std::string_view rest = end == std::string_view::npos ? "" : s.substr(end);
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    url.host = std::string(authority.substr(1, close - 1));
    in6_addr probe{};
    if (inet_pton(AF_INET6, url.host.c_str(), &probe) != 1) return std::nullopt;
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      port_text = after.substr(1);
      if (port_text.empty()) return std::nullopt;
    }
  } else {
    const size_t colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return std::nullopt;
    }
    if (url.host.empty() || !std::all_of(url.host.begin(), url.host.end(), HostChar)) {
      return std::nullopt;
    }
  }
  int port = url.tls ? 443 : 80;
  if (!port_text.empty()) {
    if (port_text.size() > 5 || !std::all_of(port_text.begin(), port_text.end(),
                                             [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    port = std::stoi(std::string(port_text));
    if (port < 1 || port > 65535) return std::nullopt;
  }
  url.port = static_cast<uint16_t>(port);
  const size_t fragment = rest.find('#');
  rest = rest.substr(0, fragment);
  for (char c : rest) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return std::nullopt;
  }
  url.target = rest.empty() || rest.front() != '/' ? "/" + std::string(rest) : std::string(rest);
  url.host_header = std::string(authority);
  url.origin = (url.tls ? "https://" : "http://") + ToLower(url.host) + ":" + std::to_string(port);
  return url;
}

// ---- Answers --------------------------------------------------------------------------------

bool TokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Whether a comma-separated header value lists `token` (case-insensitive).
bool HasToken(const std::optional<std::string>& value, std::string_view token) {
  if (!value) return false;
  for (std::string_view item : Split(*value, ',')) {
    if (EqualsIgnoreCase(Trim(item), token)) return true;
  }
  return false;
}

// An HTTP/1.x answer read incrementally (RFC 9112): Feed bytes as they come, Eof at the end of
// the connection. Ends kDone or kFailed.
class ResponseParser {
 public:
  enum class State {
    kHead,
    kLength,
    kChunkSize,
    kChunkData,
    kChunkEnd,
    kTrailers,
    kToClose,
    kDone,
    kFailed
  };

  explicit ResponseParser(const HttpClientOptions& options) : options_(options) {}

  State state() const { return state_; }
  bool received_any() const { return received_any_; }
  HttpClientResponse& response() { return response_; }
  // Whether the connection may carry another request once this answer is done.
  bool reusable() const { return keep_alive_ && pos_ == buf_.size(); }
  std::optional<std::chrono::seconds> keep_alive_timeout() const { return keep_alive_timeout_; }

  void Feed(std::string_view data) {
    if (data.empty() || state_ == State::kDone || state_ == State::kFailed) {
      if (!data.empty() && state_ == State::kDone) buf_.append(data);  // extra: not reusable
      return;
    }
    received_any_ = true;
    buf_.append(data);
    Process();
    if (pos_ > 0 && (pos_ == buf_.size() || pos_ > 64 * 1024)) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
  }

  void Eof() {
    if (state_ == State::kToClose) {
      state_ = State::kDone;
    } else if (state_ != State::kDone && state_ != State::kFailed) {
      Fail(HttpError::kNetwork, received_any_ ? "the connection closed in the middle of the answer"
                                              : "the connection closed before the answer");
    }
    keep_alive_ = false;
  }

 private:
  void Fail(HttpError error, std::string message) {
    state_ = State::kFailed;
    response_.error = error;
    response_.message = std::move(message);
    keep_alive_ = false;
  }

  // The next line (without CR LF) when a whole one is buffered.
  std::optional<std::string_view> Line(size_t limit) {
    const size_t nl = buf_.find('\n', pos_);
    if (nl == std::string::npos) {
      if (buf_.size() - pos_ > limit) Fail(HttpError::kMalformed, "line too long in the answer");
      return std::nullopt;
    }
    std::string_view line(buf_.data() + pos_, nl - pos_);
    if (line.size() > limit) {
      Fail(HttpError::kMalformed, "line too long in the answer");
      return std::nullopt;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos_ = nl + 1;
    return line;
  }

  bool AppendBody(std::string_view bytes) {
    if (response_.body.size() + bytes.size() > options_.max_response_bytes) {
      Fail(HttpError::kTooLarge, "the answer is larger than the limit of " +
                                     std::to_string(options_.max_response_bytes) + " bytes");
      return false;
    }
    response_.body.append(bytes);
    return true;
  }

  // Body bytes counted by remaining_ (Content-Length, a chunk); `next` once all came. False
  // when more must be read first, or on failure.
  bool TakeCounted(size_t avail, State next) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, avail));
    if (n == 0 || !AppendBody(std::string_view(buf_.data() + pos_, n))) return false;
    pos_ += n;
    remaining_ -= n;
    if (remaining_ == 0) state_ = next;
    return true;
  }

  void Process() {
    while (state_ != State::kDone && state_ != State::kFailed) {
      const size_t avail = buf_.size() - pos_;
      switch (state_) {
        case State::kHead:
        case State::kTrailers: {
          const size_t left =
              options_.max_head_bytes > head_bytes_ ? options_.max_head_bytes - head_bytes_ : 0;
          std::optional<std::string_view> line = Line(left);
          if (!line) {
            if (state_ != State::kFailed && buf_.size() - pos_ > left) {
              Fail(HttpError::kMalformed, "the answer's head is too large");
            }
            return;
          }
          head_bytes_ += line->size() + 2;
          if (state_ == State::kTrailers) {
            if (line->empty()) state_ = State::kDone;
          } else if (!status_seen_) {
            ParseStatusLine(*line);
          } else if (line->empty()) {
            EndOfHead();
          } else {
            ParseHeader(*line);
          }
          break;
        }
        case State::kLength:
          if (!TakeCounted(avail, State::kDone)) return;
          break;
        case State::kChunkSize: {
          std::optional<std::string_view> line = Line(kMaxChunkSizeLine);
          if (!line) return;
          ParseChunkSize(*line);
          break;
        }
        case State::kChunkData:
          if (!TakeCounted(avail, State::kChunkEnd)) return;
          break;
        case State::kChunkEnd: {  // CR LF (or a bare LF) after the chunk's data
          if (avail == 0) return;
          if (buf_[pos_] == '\n') {
            pos_ += 1;
          } else if (buf_[pos_] != '\r') {
            return Fail(HttpError::kMalformed, "bad chunk end in the answer");
          } else if (avail < 2) {
            return;
          } else if (buf_[pos_ + 1] != '\n') {
            return Fail(HttpError::kMalformed, "bad chunk end in the answer");
          } else {
            pos_ += 2;
          }
          state_ = State::kChunkSize;
          break;
        }
        case State::kToClose: {
          if (avail == 0) return;
          if (!AppendBody(std::string_view(buf_.data() + pos_, avail))) return;
          pos_ += avail;
          break;
        }
        case State::kDone:
        case State::kFailed:
          return;
      }
    }
  }

  // HTTP/1.x SP 3DIGIT [SP reason]
  void ParseStatusLine(std::string_view line) {
    if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || (line[7] != '0' && line[7] != '1') ||
        line[8] != ' ' || (line.size() > 12 && line[12] != ' ')) {
      return Fail(HttpError::kMalformed, "malformed status line in the answer");
    }
    int status = 0;
    for (size_t i = 9; i < 12; ++i) {
      if (line[i] < '0' || line[i] > '9') {
        return Fail(HttpError::kMalformed, "malformed status line in the answer");
      }
      status = status * 10 + (line[i] - '0');
    }
    if (status < 100 || status > 599) {
      return Fail(HttpError::kMalformed, "malformed status line in the answer");
    }
    http10_ = line[7] == '0';
    response_.status = status;
    status_seen_ = true;
  }

  void ParseHeader(std::string_view line) {
    const size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos ||
        !std::all_of(line.begin(), line.begin() + static_cast<ptrdiff_t>(colon), TokenChar)) {
      return Fail(HttpError::kMalformed, "malformed header line in the answer");
    }
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    for (char c : value) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) {
        return Fail(HttpError::kMalformed, "control character in a header of the answer");
      }
    }
    response_.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }

  void EndOfHead() {
    const int status = response_.status;
    if (status >= 100 && status < 200) {
      if (status == 101) return Fail(HttpError::kMalformed, "unexpected 101 in the answer");
      response_.status = 0;  // interim answer: the real one follows
      response_.headers.clear();
      status_seen_ = false;
      return;
    }
    const std::optional<std::string> connection = response_.Header("Connection", ",");
    keep_alive_ = http10_ ? HasToken(connection, "keep-alive") : !HasToken(connection, "close");
    if (std::optional<std::string> ka = response_.Header("Keep-Alive", ",")) {
      for (std::string_view item : Split(*ka, ',')) {
        item = Trim(item);
        if (!StartsWithIgnoreCase(item, "timeout=")) continue;
        item.remove_prefix(8);
        int seconds = 0;
        bool digits = !item.empty() && item.size() <= 6;
        for (char c : item) {
          digits = digits && c >= '0' && c <= '9';
          if (digits) seconds = seconds * 10 + (c - '0');
        }
        if (digits) keep_alive_timeout_ = std::chrono::seconds(seconds);
      }
    }
    if (status == 204 || status == 304) {
      state_ = State::kDone;
      return;
    }
    if (std::optional<std::string> te = response_.Header("Transfer-Encoding", ",")) {
      const std::vector<std::string_view> codings = Split(*te, ',');
      if (!codings.empty() && EqualsIgnoreCase(Trim(codings.back()), "chunked")) {
        // With a Content-Length too the framing is doubtful: not reused (RFC 9112 6.1).
        if (response_.Header("Content-Length")) keep_alive_ = false;
        state_ = State::kChunkSize;
      } else {
        keep_alive_ = false;
        state_ = State::kToClose;
      }
      return;
    }
    if (std::optional<std::string> cl = response_.Header("Content-Length", ",")) {
      std::optional<uint64_t> length;
      for (std::string_view item : Split(*cl, ',')) {
        item = Trim(item);
        uint64_t n = 0;
        if (item.empty() || item.size() > 19) {
          return Fail(HttpError::kMalformed, "invalid Content-Length in the answer");
        }
        for (char c : item) {
          if (c < '0' || c > '9') {
            return Fail(HttpError::kMalformed, "invalid Content-Length in the answer");
          }
          n = n * 10 + static_cast<uint64_t>(c - '0');
        }
        if (length && *length != n) {
          return Fail(HttpError::kMalformed, "conflicting Content-Length in the answer");
        }
        length = n;
      }
      if (*length > options_.max_response_bytes) {
        return Fail(HttpError::kTooLarge, "the answer is larger than the limit of " +
                                              std::to_string(options_.max_response_bytes) +
                                              " bytes");
      }
      remaining_ = *length;
      state_ = remaining_ == 0 ? State::kDone : State::kLength;
      return;
    }
    keep_alive_ = false;
    state_ = State::kToClose;
  }

  void ParseChunkSize(std::string_view line) {
    line = line.substr(0, line.find(';'));
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
    if (line.empty() || line.size() > 15) {
      return Fail(HttpError::kMalformed, "invalid chunk size in the answer");
    }
    uint64_t size = 0;
    for (char c : line) {
      const int d = HexDigitValue(c);
      if (d < 0) return Fail(HttpError::kMalformed, "invalid chunk size in the answer");
      size = size * 16 + static_cast<uint64_t>(d);
    }
    if (size == 0) {
      state_ = State::kTrailers;
      return;
    }
    if (response_.body.size() + size > options_.max_response_bytes) {
      return Fail(HttpError::kTooLarge, "the answer is larger than the limit of " +
                                            std::to_string(options_.max_response_bytes) + " bytes");
    }
    remaining_ = size;
    state_ = State::kChunkData;
  }

  const HttpClientOptions& options_;
  State state_ = State::kHead;
  HttpClientResponse response_;
  std::string buf_;
  size_t pos_ = 0;
  size_t head_bytes_ = 0;
  uint64_t remaining_ = 0;
  bool status_seen_ = false;
  bool http10_ = false;
  bool keep_alive_ = false;
  bool received_any_ = false;
  std::optional<std::chrono::seconds> keep_alive_timeout_;
};

// ---- The client -----------------------------------------------------------------------------

std::string SslErrorText() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

struct Address {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

std::optional<Address> IpLiteral(const std::string& host, uint16_t port) {
  Address a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.len = sizeof(sockaddr_in);
    return a;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.addr);
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.len = sizeof(sockaddr_in6);
    return a;
  }
  return std::nullopt;
}

class EpollHttpClient final : public HttpClient {
 public:
  EpollHttpClient(HttpClientOptions options, SSL_CTX* tls)
      : options_(std::move(options)), tls_(tls) {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
    thread_ = std::thread([this] { Run(); });
    resolver_ = std::thread([this] { ResolveLoop(); });
  }

  ~EpollHttpClient() override {
    Shutdown();
    if (wake_fd_ >= 0) close(wake_fd_);
    if (epoll_fd_ >= 0) close(epoll_fd_);
    SSL_CTX_free(tls_);
  }

  void Send(HttpClientRequest request, std::function<void(HttpClientResponse)> done) override {
    auto ex = std::make_shared<Exchange>();
    ex->request = std::move(request);
    ex->done = std::move(done);
    {
      std::lock_guard lock(mu_);
      if (!exited_) {
        inbox_.push_back([this, ex] { Start(ex); });
        Wake();
        return;
      }
    }
    HttpClientResponse r;
    r.error = HttpError::kShuttingDown;
    r.message = "shutting down";
    if (ex->done) ex->done(std::move(r));
  }

  HttpClientStats Stats() const override {
    HttpClientStats s;
    s.connections_opened = connections_opened_.load();
    s.requests_on_reused = requests_on_reused_.load();
    s.stale_discarded = stale_discarded_.load();
    s.fresh_retries = fresh_retries_.load();
    return s;
  }

  void Shutdown() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      Wake();
    }
    {
      // Under its mutex: the resolver may be between its predicate and its wait.
      std::lock_guard lock(resolve_mu_);
    }
    resolve_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (resolver_.joinable()) resolver_.join();
  }

 private:
  struct Exchange {
    uint64_t id = 0;
    HttpClientRequest request;
    std::function<void(HttpClientResponse)> done;
    std::optional<Url> url;
    Clock::time_point deadline;
    uint64_t conn = 0;        // 0 while resolving
    bool fresh_only = false;  // the safe retry: never a pooled connection again
    size_t written = 0;       // bytes of this request written on `conn`
    std::unique_ptr<ResponseParser> parser;
  };

  enum class Phase { kConnecting, kHandshake, kWriting, kReading, kIdle };

  struct Conn {
    uint64_t id = 0;
    int fd = -1;
    SSL* ssl = nullptr;
    std::string origin;
    Phase phase = Phase::kConnecting;
    uint32_t interest = 0;
    bool registered = false;
    bool reused = false;  // carries a request after having been idle in the pool
    std::shared_ptr<Exchange> exchange;
    std::string out;
    size_t out_pos = 0;
    Clock::time_point idle_until;
  };

  void Wake() {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
  }

  // ---- event loop ----

  void Run() {
    epoll_event events[64];
    while (true) {
      int timeout_ms = static_cast<int>(kSweepEvery.count());
      if (!deadlines_.empty()) {
        const auto until = deadlines_.begin()->first - Clock::now();
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(until).count();
        timeout_ms = static_cast<int>(std::clamp<int64_t>(ms, 0, timeout_ms));
      }
      const int n = epoll_wait(epoll_fd_, events, 64, timeout_ms);
      for (int i = 0; i < n; ++i) {
        if (events[i].data.u64 == 0) {
          uint64_t value;
          [[maybe_unused]] ssize_t r = read(wake_fd_, &value, sizeof value);
          continue;
        }
        OnEvent(events[i].data.u64, events[i].events);
      }
      std::vector<std::function<void()>> tasks;
      bool stopping;
      {
        std::lock_guard lock(mu_);
        tasks.swap(inbox_);
        stopping = stopping_;
        if (stopping) exited_ = true;  // Send completes inline from now on
      }
      for (auto& task : tasks) task();
      if (stopping) break;
      ExpireDeadlines();
      SweepIdle();
    }
    std::vector<std::shared_ptr<Exchange>> pending;
    for (auto& [id, ex] : exchanges_) pending.push_back(ex);
    for (auto& ex : pending) Fail(ex, HttpError::kShuttingDown, "shutting down");
    std::vector<uint64_t> ids;
    for (auto& [id, conn] : conns_) ids.push_back(id);
    for (uint64_t id : ids) CloseConn(id);
  }

  void Start(const std::shared_ptr<Exchange>& ex) {
    ex->id = next_id_++;
    exchanges_.emplace(ex->id, ex);
    ex->deadline = Clock::now() + ex->request.timeout;
    deadlines_.emplace(ex->deadline, ex->id);
    if (stopping_now()) return Fail(ex, HttpError::kShuttingDown, "shutting down");
    ex->url = ParseUrl(ex->request.url);
    if (!ex->url) return Fail(ex, HttpError::kInvalidRequest, "invalid url");
    for (const auto& [name, value] : ex->request.headers) {
      if (!SafeHeader(name, value))
        return Fail(ex, HttpError::kInvalidRequest, "invalid header " + name);
    }
    Dispatch(ex);
  }

  bool stopping_now() {
    std::lock_guard lock(mu_);
    return stopping_;
  }

  static bool SafeHeader(const std::string& name, const std::string& value) {
    return !name.empty() && std::all_of(name.begin(), name.end(), TokenChar) &&
           value.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos;
  }

  // A pooled connection when one is alive, else a new one.
  void Dispatch(const std::shared_ptr<Exchange>& ex) {
    const Url& url = *ex->url;
    if (!ex->fresh_only) {
      if (Conn* conn = TakeIdle(url.origin)) {
        conn->reused = true;
        ++requests_on_reused_;
        return BeginRequest(conn, ex);
      }
    }
    if (std::optional<Address> a = IpLiteral(url.host, url.port)) return Connect(ex, *a);
    const std::string key = url.host + ":" + std::to_string(url.port);
    if (auto it = resolved_.find(key); it != resolved_.end()) {
      if (Clock::now() < it->second.second) return Connect(ex, it->second.first);
      resolved_.erase(it);
    }
    std::vector<uint64_t>& waiting = resolving_[key];
    waiting.push_back(ex->id);
    if (waiting.size() == 1) {
      {
        std::lock_guard lock(resolve_mu_);
        resolve_queue_.emplace_back(url.host, url.port);
      }
      resolve_cv_.notify_one();
    }
  }

  Conn* TakeIdle(const std::string& origin) {
    auto it = idle_.find(origin);
    if (it == idle_.end()) return nullptr;
    std::deque<uint64_t>& ids = it->second;
    const auto now = Clock::now();
    while (!ids.empty()) {
      const uint64_t id = ids.back();
      ids.pop_back();
      auto c = conns_.find(id);
      if (c == conns_.end()) continue;
      Conn* conn = c->second.get();
      pollfd p{conn->fd, POLLIN, 0};
      if (now >= conn->idle_until) {
        CloseConn(id);
      } else if (poll(&p, 1, 0) != 0) {
        // Readable: closed by the server (or it sent what nobody asked for). Not one byte
        // of the request was written, so a new connection takes it.
        ++stale_discarded_;
        CloseConn(id);
      } else {
        return conn;
      }
    }
    return nullptr;
  }

  void Connect(const std::shared_ptr<Exchange>& ex, const Address& a) {
    const int fd = socket(a.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Fail(ex, HttpError::kNetwork, Errno("socket"));
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len) != 0 &&
        errno != EINPROGRESS) {
      const std::string error = Errno("connect");
      close(fd);
      return Fail(ex, HttpError::kNetwork, error);
    }
    ++connections_opened_;
    auto conn = std::make_unique<Conn>();
    conn->id = next_id_++;
    conn->fd = fd;
    conn->origin = ex->url->origin;
    Conn* c = conn.get();
    conns_.emplace(c->id, std::move(conn));
    c->exchange = ex;
    ex->conn = c->id;
    ex->written = 0;
    c->phase = Phase::kConnecting;
    SetInterest(c, EPOLLOUT);
  }

  static std::string Errno(const char* what) {
    return std::string(what) + ": " + std::strerror(errno);
  }

  void BeginRequest(Conn* conn, const std::shared_ptr<Exchange>& ex) {
    conn->exchange = ex;
    ex->conn = conn->id;
    ex->written = 0;
    ex->parser = std::make_unique<ResponseParser>(options_);
    const HttpClientRequest& r = ex->request;
    std::string& out = conn->out;
    out.clear();
    conn->out_pos = 0;
    out.reserve(256 + r.body.size());
    out.append(r.method).append(" ").append(ex->url->target).append(" HTTP/1.1\r\nHost: ");
    out.append(ex->url->host_header).append("\r\n");
    for (const auto& [name, value] : r.headers)
      out.append(name).append(": ").append(value).append("\r\n");
    out.append("Content-Length: ").append(std::to_string(r.body.size())).append("\r\n\r\n");
    out.append(r.body);
    conn->phase = Phase::kWriting;
    Write(conn);
  }

  void SetInterest(Conn* conn, uint32_t events) {
    if (conn->registered && conn->interest == events) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = conn->id;
    epoll_ctl(epoll_fd_, conn->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, conn->fd, &ev);
    conn->registered = true;
    conn->interest = events;
  }

  void OnEvent(uint64_t id, uint32_t events) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    Conn* conn = it->second.get();
    switch (conn->phase) {
      case Phase::kIdle:
        RemoveIdle(conn);
        CloseConn(id);
        return;
      case Phase::kConnecting: {
        int error = 0;
        socklen_t len = sizeof error;
        getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &error, &len);
        if (error == 0 && (events & (EPOLLERR | EPOLLHUP))) error = ECONNREFUSED;
        if (error != 0) {
          errno = error;
          return FailConn(conn, HttpError::kNetwork, Errno("connect"));
        }
        if (!conn->exchange->url->tls) return BeginRequest(conn, conn->exchange);
        if (!StartTls(conn)) return;
        return Handshake(conn);
      }
      case Phase::kHandshake:
        return Handshake(conn);
      case Phase::kWriting:
        return Write(conn);
      case Phase::kReading:
        return Read(conn);
    }
  }

  bool StartTls(Conn* conn) {
    const Url& url = *conn->exchange->url;
    conn->ssl = SSL_new(tls_);
    if (!conn->ssl) {
      FailConn(conn, HttpError::kNetwork, "TLS: " + SslErrorText());
      return false;
    }
    SSL_set_fd(conn->ssl, conn->fd);
    SSL_set_mode(conn->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    X509_VERIFY_PARAM* param = SSL_get0_param(conn->ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    bool named = false;
    if (IpLiteral(url.host, url.port)) {
      named = X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str()) == 1;
    } else {
      named = SSL_set1_host(conn->ssl, url.host.c_str()) == 1 &&
              SSL_set_tlsext_host_name(conn->ssl, url.host.c_str()) == 1;
    }
    if (!named) {
      FailConn(conn, HttpError::kNetwork, "TLS: cannot set the host name to verify");
      return false;
    }
    SSL_set_connect_state(conn->ssl);
    conn->phase = Phase::kHandshake;
    return true;
  }

  // After an SSL call that returned <= 0: waits for what it needs; false when it failed.
  bool TlsWait(Conn* conn, int ret, const char* what, std::string* error) {
    const int e = SSL_get_error(conn->ssl, ret);
    if (e == SSL_ERROR_WANT_READ) {
      SetInterest(conn, kReadable);
      return true;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
      SetInterest(conn, EPOLLOUT);
      return true;
    }
    if (e == SSL_ERROR_SYSCALL && errno != 0) {
      *error = Errno(what);
    } else if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL) {
      *error = std::string(what) + ": the connection closed";
    } else {
      *error = std::string(what) + ": " + SslErrorText();
    }
    ERR_clear_error();
    return false;
  }

  void Handshake(Conn* conn) {
    ERR_clear_error();
    errno = 0;
    const int r = SSL_do_handshake(conn->ssl);
    if (r == 1) return BeginRequest(conn, conn->exchange);
    std::string error;
    if (TlsWait(conn, r, "TLS handshake", &error)) return;
    const long verify = SSL_get_verify_result(conn->ssl);
    if (verify != X509_V_OK) {
      error = std::string("TLS handshake: certificate verify failed: ") +
              X509_verify_cert_error_string(verify);
    }
    FailConn(conn, HttpError::kNetwork, error);
  }

  void Write(Conn* conn) {
    const std::shared_ptr<Exchange> ex = conn->exchange;
    while (conn->out_pos < conn->out.size()) {
      const char* data = conn->out.data() + conn->out_pos;
      const size_t size = conn->out.size() - conn->out_pos;
      ssize_t n;
      std::string error;
      errno = 0;
      if (conn->ssl) {
        ERR_clear_error();
        const int r = SSL_write(conn->ssl, data, static_cast<int>(std::min<size_t>(size, 1 << 30)));
        if (r <= 0) {
          if (TlsWait(conn, r, "write", &error)) return;
          return WriteFailed(conn, error);
        }
        n = r;
      } else {
        n = send(conn->fd, data, size, MSG_NOSIGNAL);
        if (n < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            SetInterest(conn, EPOLLOUT);
            return;
          }
          return WriteFailed(conn, Errno("write"));
        }
      }
      conn->out_pos += static_cast<size_t>(n);
      ex->written += static_cast<size_t>(n);
    }
    conn->out.clear();
    conn->out.shrink_to_fit();
    conn->out_pos = 0;
    conn->phase = Phase::kReading;
    SetInterest(conn, kReadable);
  }

  // The safe retry rule (see the header).
  void WriteFailed(Conn* conn, const std::string& error) {
    const std::shared_ptr<Exchange> ex = conn->exchange;
    if (conn->reused && ex->written == 0) {
      ++fresh_retries_;
      conn->exchange = nullptr;
      CloseConn(conn->id);
      ex->conn = 0;
      ex->fresh_only = true;
      return Dispatch(ex);
    }
    FailConn(conn, HttpError::kNetwork, error);
  }

  void Read(Conn* conn) {
    const std::shared_ptr<Exchange> ex = conn->exchange;
    char buf[kReadChunk];
    // A few reads per wake-up: one answer does not starve the other connections.
    // TLS reads on until WANT_READ: decrypted bytes left in OpenSSL would not wake epoll.
    for (int round = 0; conn->ssl || round < 8; ++round) {
      errno = 0;
      ssize_t n;
      if (conn->ssl) {
        ERR_clear_error();
        const int r = SSL_read(conn->ssl, buf, sizeof buf);
        if (r <= 0) {
          const int e = SSL_get_error(conn->ssl, r);
          if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0)) {
            ERR_clear_error();
            n = 0;
          } else {
            std::string error;
            if (TlsWait(conn, r, "read", &error)) return;
            return FailConn(conn, HttpError::kNetwork, error);
          }
        } else {
          n = r;
        }
      } else {
        n = recv(conn->fd, buf, sizeof buf, 0);
        if (n < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            SetInterest(conn, kReadable);
            return;
          }
          return FailConn(conn, HttpError::kNetwork, Errno("read"));
        }
      }
      ResponseParser& parser = *ex->parser;
      if (n == 0) {
        parser.Eof();
      } else {
        parser.Feed(std::string_view(buf, static_cast<size_t>(n)));
      }
      if (parser.state() == ResponseParser::State::kFailed) {
        return FailConn(conn, parser.response().error, parser.response().message);
      }
      if (parser.state() == ResponseParser::State::kDone) return Answered(conn);
      if (n == 0) return;  // unreachable: Eof ends the parser
    }
  }

  void Answered(Conn* conn) {
    const std::shared_ptr<Exchange> ex = conn->exchange;
    ResponseParser& parser = *ex->parser;
    // A TLS record may hold more than the answer: SSL_pending bytes were not asked for.
    const bool reusable = parser.reusable() && !(conn->ssl && SSL_pending(conn->ssl) > 0);
    HttpClientResponse response = std::move(parser.response());
    std::optional<std::chrono::seconds> keep = parser.keep_alive_timeout();
    conn->exchange = nullptr;
    ex->conn = 0;
    std::deque<uint64_t>& pool = idle_[conn->origin];
    if (reusable && pool.size() < options_.max_idle_per_origin && !(keep && keep->count() == 0)) {
      auto idle = std::chrono::duration_cast<std::chrono::milliseconds>(options_.idle_timeout);
      if (keep) {
        // Dropped before the server would drop it: a second early (half the time when short).
        const auto server = std::chrono::duration_cast<std::chrono::milliseconds>(*keep);
        idle = std::min(
            idle, server > std::chrono::seconds(2) ? server - std::chrono::seconds(1) : server / 2);
      }
      conn->phase = Phase::kIdle;
      conn->reused = false;
      conn->idle_until = Clock::now() + idle;
      SetInterest(conn, kReadable);
      pool.push_back(conn->id);
    } else {
      CloseConn(conn->id);
    }
    Complete(ex, std::move(response));
  }

  void RemoveIdle(Conn* conn) {
    auto it = idle_.find(conn->origin);
    if (it == idle_.end()) return;
    auto& ids = it->second;
    ids.erase(std::remove(ids.begin(), ids.end(), conn->id), ids.end());
  }

  void FailConn(Conn* conn, HttpError error, std::string message) {
    const std::shared_ptr<Exchange> ex = conn->exchange;
    conn->exchange = nullptr;
    CloseConn(conn->id);
    if (ex) Fail(ex, error, std::move(message));
  }

  void CloseConn(uint64_t id) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    Conn* conn = it->second.get();
    if (conn->registered) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, conn->fd, nullptr);
    if (conn->ssl) SSL_free(conn->ssl);
    close(conn->fd);
    conns_.erase(it);
  }

  void Fail(const std::shared_ptr<Exchange>& ex, HttpError error, std::string message) {
    if (ex->conn != 0) {
      auto it = conns_.find(ex->conn);
      if (it != conns_.end() && it->second->exchange == ex) {
        it->second->exchange = nullptr;
        CloseConn(ex->conn);
      }
      ex->conn = 0;
    }
    HttpClientResponse r;
    r.error = error;
    r.message = std::move(message);
    Complete(ex, std::move(r));
  }

  void Complete(const std::shared_ptr<Exchange>& ex, HttpClientResponse response) {
    if (exchanges_.erase(ex->id) == 0) return;
    deadlines_.erase({ex->deadline, ex->id});
    std::function<void(HttpClientResponse)> done = std::move(ex->done);
    ex->done = nullptr;
    if (!done) return;
    try {
      done(std::move(response));
    } catch (...) {
      // A throwing callback must not end the event thread.
    }
  }

  void ExpireDeadlines() {
    const auto now = Clock::now();
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      const uint64_t id = deadlines_.begin()->second;
      auto it = exchanges_.find(id);
      if (it == exchanges_.end()) {
        deadlines_.erase(deadlines_.begin());
        continue;
      }
      Fail(std::shared_ptr<Exchange>(it->second), HttpError::kTimedOut, "timed out");
    }
  }

  void SweepIdle() {
    const auto now = Clock::now();
    if (now < next_sweep_) return;
    next_sweep_ = now + kSweepEvery;
    for (auto it = idle_.begin(); it != idle_.end();) {
      auto& ids = it->second;
      for (auto id = ids.begin(); id != ids.end();) {
        auto c = conns_.find(*id);
        if (c == conns_.end() || now >= c->second->idle_until) {
          if (c != conns_.end()) CloseConn(*id);
          id = ids.erase(id);
        } else {
          ++id;
        }
      }
      it = ids.empty() ? idle_.erase(it) : std::next(it);
    }
  }

  // ---- resolver thread ----

  void ResolveLoop() {
    while (true) {
      std::pair<std::string, uint16_t> job;
      {
        std::unique_lock lock(resolve_mu_);
        resolve_cv_.wait(lock, [this] { return !resolve_queue_.empty() || StoppingLocked(); });
        if (resolve_queue_.empty()) return;
        job = std::move(resolve_queue_.front());
        resolve_queue_.pop_front();
      }
      if (StoppingLocked()) return;
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* found = nullptr;
      std::optional<Address> address;
      if (getaddrinfo(job.first.c_str(), nullptr, &hints, &found) == 0) {
        // IPv4 first: handlers on this host listen on 127.0.0.1 more often than on ::1.
        for (int family : {AF_INET, AF_INET6}) {
          for (addrinfo* a = found; a && !address; a = a->ai_next) {
            if (a->ai_family != family || a->ai_addrlen > sizeof(sockaddr_storage)) continue;
            Address out;
            std::memcpy(&out.addr, a->ai_addr, a->ai_addrlen);
            out.len = a->ai_addrlen;
            if (family == AF_INET) {
              reinterpret_cast<sockaddr_in*>(&out.addr)->sin_port = htons(job.second);
            } else {
              reinterpret_cast<sockaddr_in6*>(&out.addr)->sin6_port = htons(job.second);
            }
            address = out;
          }
        }
        freeaddrinfo(found);
      }
      std::lock_guard lock(mu_);
      if (exited_) return;
      inbox_.push_back([this, job, address] { Resolved(job.first, job.second, address); });
      Wake();
    }
  }

  bool StoppingLocked() {
    std::lock_guard lock(mu_);
    return stopping_;
  }

  void Resolved(const std::string& host, uint16_t port, const std::optional<Address>& address) {
    const std::string key = host + ":" + std::to_string(port);
    std::vector<uint64_t> waiting;
    if (auto it = resolving_.find(key); it != resolving_.end()) {
      waiting.swap(it->second);
      resolving_.erase(it);
    }
    if (address) resolved_[key] = {*address, Clock::now() + kResolveTtl};
    for (uint64_t id : waiting) {
      auto it = exchanges_.find(id);
      if (it == exchanges_.end()) continue;  // timed out meanwhile
      std::shared_ptr<Exchange> ex = it->second;
      if (address) {
        Connect(ex, *address);
      } else {
        Fail(ex, HttpError::kNetwork, "cannot resolve " + host);
      }
    }
  }

  const HttpClientOptions options_;
  SSL_CTX* const tls_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;

  std::mutex mu_;  // inbox_, stopping_, exited_
  std::vector<std::function<void()>> inbox_;
  bool stopping_ = false;
  bool exited_ = false;

  // Event thread only.
  uint64_t next_id_ = 1;  // 0 is the wake-up fd
  std::unordered_map<uint64_t, std::shared_ptr<Exchange>> exchanges_;
  std::set<std::pair<Clock::time_point, uint64_t>> deadlines_;
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::unordered_map<std::string, std::deque<uint64_t>> idle_;        // origin -> ids, LRU first
  std::unordered_map<std::string, std::vector<uint64_t>> resolving_;  // host:port -> exchanges
  std::unordered_map<std::string, std::pair<Address, Clock::time_point>> resolved_;
  Clock::time_point next_sweep_;

  std::mutex resolve_mu_;
  std::condition_variable resolve_cv_;
  std::deque<std::pair<std::string, uint16_t>> resolve_queue_;

  std::atomic<uint64_t> connections_opened_{0};
  std::atomic<uint64_t> requests_on_reused_{0};
  std::atomic<uint64_t> stale_discarded_{0};
  std::atomic<uint64_t> fresh_retries_{0};

  std::thread thread_;
  std::thread resolver_;
};

}  // namespace

Result<std::unique_ptr<HttpClient>> HttpClient::Create(HttpClientOptions options) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return Status::Internal("TLS: " + SslErrorText());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_default_verify_paths(ctx);
  // A server that closes without close_notify ends a read-to-close body like a TCP close.
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (!options.ca_file.empty() &&
      SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1) {
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return Status::InvalidArgument("cannot load the CA file " + options.ca_file);
  }
  ERR_clear_error();
  return std::unique_ptr<HttpClient>(new EpollHttpClient(std::move(options), ctx));
}

}  // namespace hubcast::rest
