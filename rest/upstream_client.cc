#include "rest/upstream_client.h"

#include "base/strings.h"
#include "rest/jwt.h"

#include <cpprest/http_client.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <pplx/threadpool.h>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hubcast::rest {
namespace {

namespace http = web::http;
using Clock = std::chrono::steady_clock;

constexpr char kShuttingDown[] = "shutting down";
constexpr char kTimedOut[] = "timed out";
constexpr char kValidationFailed[] = "abuse protection validation failed: ";
// How long the destructor waits for cancelled requests and running `done` callbacks.
constexpr std::chrono::seconds kShutdownGrace{5};

using Headers = std::vector<std::pair<std::string, std::string>>;

UpstreamResponse Failure(std::string error) {
  UpstreamResponse r;
  r.timed_out = error == kTimedOut;
  r.error = std::move(error);
  return r;
}

// cpprestsdk joins repeated response headers with ", ", so one split covers both the
// comma-separated and the multi-valued form express uses for allowedEndpoints.
bool OriginAllowed(std::string_view allowed, std::string_view origin) {
  while (true) {
    const size_t comma = allowed.find(',');
    const std::string_view item = Trim(allowed.substr(0, comma));
    if (item == "*" || (!item.empty() && EqualsIgnoreCase(item, origin))) return true;
    if (comma == std::string_view::npos) return false;
    allowed.remove_prefix(comma + 1);
  }
}

std::string IsoTimeNow() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Values come from tokens and apps; a CR or LF would let them inject headers.
bool SafeHeaderValue(std::string_view v) {
  return v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// ce-signature: one HMAC per access key (primary, secondary).
std::string EventSignature(const UpstreamRequest& req, const UpstreamOptions& options) {
  std::string signature;
  for (const std::string& key : options.access_keys) {
    if (!signature.empty()) signature += ',';
    signature += "sha256=" + HmacSha256Hex(key, req.connection_id);
  }
  return signature;
}

Headers EventHeaders(const UpstreamRequest& req, const std::string& signature,
                     const UpstreamOptions& options) {
  Headers h = {
      {"WebHook-Request-Origin", options.origin},
      {"ce-specversion", "1.0"},
      {"ce-awpsversion", "1.0"},
      {"ce-type", req.ce_type},
      {"ce-source", "/hubs/" + req.hub + "/client/" + req.connection_id},
      {"ce-id", req.event_id},
      {"ce-time", IsoTimeNow()},
      {"ce-signature", signature},
      {"ce-connectionId", req.connection_id},
      {"ce-hub", req.hub},
      {"ce-eventName", req.event_name},
  };
  if (req.user_id) h.emplace_back("ce-userId", *req.user_id);
  if (!req.subprotocol.empty()) h.emplace_back("ce-subprotocol", req.subprotocol);
  if (req.connection_state) h.emplace_back("ce-connectionState", *req.connection_state);
  return h;
}

// Closures due at a deadline (retry back-offs, attempt deadlines), run on one thread owned by
// the client so no pool thread sleeps.
class TimerThread {
 public:
  using Key = std::pair<Clock::time_point, uint64_t>;  // unique; ordered by deadline

  TimerThread() {
    thread_ = std::thread([this] { Run(); });
  }
  ~TimerThread() { Stop(); }

  // Nullopt once stopped: the closure is dropped and the caller must act without it.
  std::optional<Key> Schedule(Clock::time_point when, std::function<void()> fn) {
    Key key;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return std::nullopt;
      key = Key{when, next_seq_++};
      queue_.emplace(key, std::move(fn));
    }
    cv_.notify_one();
    return key;
  }

  // Drops a closure that has not run yet (no effect once it ran).
  void Cancel(const Key& key) {
    std::function<void()> dropped;
    std::lock_guard lock(mu_);
    if (auto it = queue_.find(key); it != queue_.end()) {
      dropped = std::move(it->second);
      queue_.erase(it);
    }
  }

  // Joins the thread and discards every closure not yet run.
  void Stop() {
    std::map<Key, std::function<void()>> dropped;
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      dropped.swap(queue_);
    }
    cv_.notify_one();
    if (thread_.joinable()) {
      if (thread_.get_id() == std::this_thread::get_id()) {
        thread_.detach();
      } else {
        thread_.join();
      }
    }
  }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      if (queue_.empty()) {
        cv_.wait(lock);
        continue;
      }
      auto first = queue_.begin();
      if (first->first.first > Clock::now()) {
        // A copy: wait_until reads the deadline again after waking, by which time Cancel or
        // Stop may have freed the node holding it (AddressSanitizer caught the reference).
        const Clock::time_point deadline = first->first.first;
        cv_.wait_until(lock, deadline);
        continue;
      }
      std::function<void()> fn = std::move(first->second);
      queue_.erase(first);
      lock.unlock();
      fn();
      fn = nullptr;
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<Key, std::function<void()>> queue_;
  uint64_t next_seq_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

struct CallCtx {
  uint64_t id = 0;
  UpstreamRequest request;
  // Computed in Call(), on the caller's thread: OpenSSL keeps per-thread state on the thread
  // that uses it, and cpprestsdk's threads (which start attempts after a validation or a
  // back-off) outlive the client, so signing there would hold that state until the process
  // ends (LeakSanitizer reports it).
  std::string signature;
  std::function<void(UpstreamResponse)> done;
  int attempt = 0;  // attempts started; touched by one thread at a time (attempts are sequential)
  std::atomic<bool> finished{false};
};

struct Validation {
  enum class Phase { kPending, kValid, kFailed };
  Phase phase = Phase::kPending;
  Clock::time_point failed_at;
  std::string error;                              // when kFailed: the whole call error
  std::vector<std::shared_ptr<CallCtx>> waiters;  // when kPending
};

// Result of one HTTP exchange; `transient` marks a status-0 failure worth retrying.
struct Outcome {
  UpstreamResponse response;
  bool transient = false;
  std::optional<std::string> allowed_origin;  // WebHook-Allowed-Origin, repeats joined by ","
};

Outcome Failed(std::string error) {
  Outcome o;
  o.response = Failure(std::move(error));
  return o;
}

// The shared state behind an UpstreamClient. Continuations hold a shared_ptr to it, so a
// continuation that outlives the client (after the bounded shutdown wait) still touches live
// memory; it then finds its call finished and does nothing.
//
// Shutdown protocol:
//   1. shutting_down_ is set; calls started from then on finish with "shutting down".
//   2. The timer thread is joined; scheduled retries are dropped.
//   3. Every HTTP exchange in flight is cancelled; none starts any more.
//   4. Every registered call gets a pool task that finishes it with "shutting down"; the
//      `finished` flag makes whichever completion comes first the only one.
//   5. The destructor waits (at most kShutdownGrace) until no call is registered (every
//      `done` has returned) and no HTTP exchange is in flight.
class Engine;
// The engine whose `done` callback this thread is running, if any.
thread_local const Engine* running_done = nullptr;
// The engine whose Call() this thread is in, if any: `done` must not run there.
thread_local const Engine* inside_call = nullptr;

class Engine : public std::enable_shared_from_this<Engine> {
 public:
  explicit Engine(UpstreamOptions options) : options_(std::move(options)) {
    options_.max_attempts = std::max(1, options_.max_attempts);
  }

  void Call(UpstreamRequest request, std::function<void(UpstreamResponse)> done) {
    const Engine* const outer = inside_call;
    inside_call = this;
    CallInner(std::move(request), std::move(done));
    inside_call = outer;
  }

  void CallInner(UpstreamRequest request, std::function<void(UpstreamResponse)> done) {
    auto ctx = std::make_shared<CallCtx>();
    ctx->request = std::move(request);
    ctx->done = std::move(done);
    bool shutting_down;
    {
      std::lock_guard lock(mu_);
      ctx->id = next_call_id_++;
      calls_.emplace(ctx->id, ctx);
      shutting_down = shutting_down_;
    }
    if (shutting_down) return FinishLater(ctx, Failure(kShuttingDown));
    if (std::string error = CheckRequest(ctx->request); !error.empty()) {
      return FinishLater(ctx, Failure(std::move(error)));
    }
    ctx->signature = EventSignature(ctx->request, options_);
    if (ctx->request.validation_url.empty()) return StartAttempt(ctx);
    Validate(ctx);
  }

  void ResetValidations() {
    std::unordered_map<std::string, std::shared_ptr<Validation>> dropped;
    std::lock_guard lock(mu_);
    dropped.swap(validations_);
  }

  bool Drain(std::chrono::milliseconds limit) {
    std::unique_lock lock(mu_);
    return idle_.wait_for(lock, limit, [this] { return calls_.empty() && attempts_.empty(); });
  }

  void Shutdown() {
    std::vector<std::shared_ptr<CallCtx>> pending;
    std::vector<std::shared_ptr<pplx::cancellation_token_source>> attempts;
    {
      std::lock_guard lock(mu_);
      if (shutting_down_) return;
      shutting_down_ = true;
      for (const auto& [id, ctx] : calls_) pending.push_back(ctx);
      for (const auto& [id, source] : attempts_) attempts.push_back(source);
    }
    timer_.Stop();
    for (const auto& source : attempts) source->cancel();
    attempts.clear();
    for (const std::shared_ptr<CallCtx>& ctx : pending) FinishLater(ctx, Failure(kShuttingDown));
    pending.clear();

    std::unordered_map<std::string, std::shared_ptr<http::client::http_client>> clients;
    std::unordered_map<std::string, std::shared_ptr<Validation>> validations;
    {
      std::unique_lock lock(mu_);
      // A `done` that destroys the client is itself a registered call: do not wait for it.
      const size_t own = running_done == this ? 1 : 0;
      idle_.wait_for(lock, kShutdownGrace,
                     [this, own] { return calls_.size() <= own && attempts_.empty(); });
      clients.swap(clients_);
      validations.swap(validations_);
    }
  }

 private:
  bool ShuttingDown() {
    std::lock_guard lock(mu_);
    return shutting_down_;
  }

  std::string CheckRequest(const UpstreamRequest& r) const {
    const std::pair<const char*, const std::string*> values[] = {
        {"ce-type", &r.ce_type},
        {"ce-eventName", &r.event_name},
        {"ce-hub", &r.hub},
        {"ce-connectionId", &r.connection_id},
        {"ce-subprotocol", &r.subprotocol},
        {"ce-id", &r.event_id},
        {"Content-Type", &r.content_type},
        {"WebHook-Request-Origin", &options_.origin},
    };
    for (const auto& [name, value] : values) {
      if (!SafeHeaderValue(*value)) return std::string("invalid header value for ") + name;
    }
    if (r.user_id && !SafeHeaderValue(*r.user_id)) return "invalid header value for ce-userId";
    if (r.connection_state && !SafeHeaderValue(*r.connection_state)) {
      return "invalid header value for ce-connectionState";
    }
    return "";
  }

  // Runs `done` at most once per call, then unregisters the call.
  void Finish(const std::shared_ptr<CallCtx>& ctx, UpstreamResponse response) {
    // pplx may run a continuation of an already completed task inline, i.e. inside Call().
    if (inside_call == this) return FinishLater(ctx, std::move(response));
    if (ctx->finished.exchange(true)) return;
    std::function<void(UpstreamResponse)> done = std::move(ctx->done);
    ctx->done = nullptr;
    const Engine* const outer = running_done;
    running_done = this;
    try {
      if (done) done(std::move(response));
    } catch (...) {
      // A throwing callback must not take a pool thread (and the process) down with it.
    }
    done = nullptr;
    running_done = outer;
    {
      std::lock_guard lock(mu_);
      calls_.erase(ctx->id);
    }
    idle_.notify_all();
  }

  // Finishes on a pool thread: `done` never runs inside Call().
  void FinishLater(std::shared_ptr<CallCtx> ctx, UpstreamResponse response) {
    Post([self = shared_from_this(), ctx = std::move(ctx), response = std::move(response)] {
      self->Finish(ctx, response);
    });
  }

  static void Post(std::function<void()> fn) {
    pplx::create_task([fn = std::move(fn)] {
      try {
        fn();
      } catch (...) {
      }
    });
  }

  void Validate(const std::shared_ptr<CallCtx>& ctx) {
    const std::string& url = ctx->request.validation_url;
    std::shared_ptr<Validation> start;
    std::string fail_fast;
    {
      std::lock_guard lock(mu_);
      std::shared_ptr<Validation>& slot = validations_[url];
      if (slot && slot->phase == Validation::Phase::kPending) {
        slot->waiters.push_back(ctx);
        return;
      }
      if (slot && slot->phase == Validation::Phase::kFailed &&
          Clock::now() - slot->failed_at < options_.validation_retry) {
        fail_fast = slot->error;
      } else if (!slot || slot->phase == Validation::Phase::kFailed) {
        slot = std::make_shared<Validation>();
        slot->waiters.push_back(ctx);
        start = slot;
      }
    }
    if (!fail_fast.empty()) return FinishLater(ctx, Failure(std::move(fail_fast)));
    if (!start) return StartAttempt(ctx);  // cached as valid

    // OPTIONS first; the emulator falls back to GET when the handler does not route OPTIONS.
    auto self = shared_from_this();
    const Headers headers = {{"WebHook-Request-Origin", options_.origin},
                             {"ce-awpsversion", "1.0"}};
    Send(http::methods::OPTIONS, url, headers, std::nullopt, "")
        .then([self, url, headers](Outcome o) {
          const int s = o.response.status;
          if (s != 404 && s != 405) return pplx::task_from_result(std::move(o));
          return self->Send(http::methods::GET, url, headers, std::nullopt, "");
        })
        .then([self, start](pplx::task<Outcome> t) {
          std::string error;
          try {
            error = ValidationError(t.get(), self->options_.origin);
          } catch (...) {
            error = "internal error";
          }
          self->CompleteValidation(start, std::move(error));
        });
  }

  static std::string ValidationError(const Outcome& o, const std::string& origin) {
    const UpstreamResponse& r = o.response;
    if (r.status == 0) return r.error;
    if (r.status < 200 || r.status >= 300) return "status " + std::to_string(r.status);
    if (!o.allowed_origin) return "no WebHook-Allowed-Origin header";
    if (!OriginAllowed(*o.allowed_origin, origin)) {
      return "WebHook-Allowed-Origin \"" + *o.allowed_origin + "\" does not allow \"" + origin +
             "\"";
    }
    return "";
  }

  void CompleteValidation(const std::shared_ptr<Validation>& v, std::string reason) {
    std::vector<std::shared_ptr<CallCtx>> waiters;
    std::string error;
    bool shutting_down;
    {
      std::lock_guard lock(mu_);
      shutting_down = shutting_down_;
      if (reason.empty()) {
        v->phase = Validation::Phase::kValid;
      } else {
        v->phase = Validation::Phase::kFailed;
        v->failed_at = Clock::now();
        v->error = kValidationFailed + reason;
        error = v->error;
      }
      waiters.swap(v->waiters);
    }
    for (const std::shared_ptr<CallCtx>& ctx : waiters) {
      if (shutting_down) {
        Finish(ctx, Failure(kShuttingDown));
      } else if (!error.empty()) {
        Finish(ctx, Failure(error));
      } else {
        StartAttempt(ctx);
      }
    }
  }

  void StartAttempt(const std::shared_ptr<CallCtx>& ctx) {
    if (ShuttingDown()) return FinishLater(ctx, Failure(kShuttingDown));
    ++ctx->attempt;
    const UpstreamRequest& req = ctx->request;
    auto self = shared_from_this();
    Send(http::methods::POST, req.url, EventHeaders(req, ctx->signature, options_), req.body,
         req.content_type,
         /*reuse=*/req.retryable)
        .then([self, ctx](pplx::task<Outcome> t) {
          try {
            self->OnAttemptDone(ctx, t.get());
          } catch (...) {
            self->Finish(ctx, Failure("internal error"));
          }
        });
  }

  void OnAttemptDone(const std::shared_ptr<CallCtx>& ctx, Outcome o) {
    if (o.response.status == 0 && ShuttingDown()) return Finish(ctx, Failure(kShuttingDown));
    const int s = o.response.status;
    const bool again = ctx->request.retryable && ctx->attempt < options_.max_attempts &&
                       (s == 408 || (s >= 500 && s < 600) || (s == 0 && o.transient));
    if (!again) return Finish(ctx, std::move(o.response));
    const auto delay = options_.retry_base * (2 * ctx->attempt - 1);
    auto self = shared_from_this();
    if (!timer_.Schedule(Clock::now() + delay, [self, ctx] { self->StartAttempt(ctx); })) {
      Finish(ctx, Failure(kShuttingDown));
    }
  }

  // One pooled client per scheme://host:port; cpprestsdk keeps its connections alive.
  // cpprestsdk resends a request by itself when a reused keep-alive connection fails before
  // the status line (a timeout or cancel included). A blocking event (connect, user events)
  // may not be idempotent, so it never rides a reused connection: it gets a client of its own.
  std::shared_ptr<http::client::http_client> ClientFor(const web::uri& uri, bool reuse) {
    if (!reuse) return std::make_shared<http::client::http_client>(uri.authority(), Config());
    std::string key = uri.scheme() + "://" + uri.host() + ":" + std::to_string(uri.port());
    std::transform(key.begin(), key.end(), key.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::lock_guard lock(mu_);
    std::shared_ptr<http::client::http_client>& client = clients_[key];
    if (!client) client = std::make_shared<http::client::http_client>(uri.authority(), Config());
    return client;
  }

  // Certificates are verified (cpprestsdk's default: peer chain and host name against the
  // system's CAs); a private CA is added from ca_file.
  http::client::http_client_config Config() const {
    http::client::http_client_config config;
    config.set_timeout(options_.timeout);
    config.set_max_redirects(0);
    config.set_validate_certificates(true);
    if (!options_.ca_file.empty()) {
      config.set_ssl_context_callback([file = options_.ca_file](boost::asio::ssl::context& ctx) {
        boost::system::error_code ec;
        ctx.load_verify_file(file, ec);  // checked at start-up (CheckCaFile)
      });
    }
    return config;
  }

  // One HTTP exchange. The task never faults: every failure becomes a status-0 response.
  pplx::task<Outcome> Send(const http::method& method, const std::string& url,
                           const Headers& headers, std::optional<std::string> body,
                           const std::string& content_type, bool reuse = true) {
    std::shared_ptr<http::client::http_client> client;
    http::http_request msg(method);
    try {
      web::uri uri(url);
      if (uri.scheme() != "http" && uri.scheme() != "https") {
        return pplx::task_from_result(Failed("invalid url"));
      }
      client = ClientFor(uri, reuse);
      msg.set_request_uri(uri.resource());
      for (const auto& [name, value] : headers) msg.headers().add(name, value);
      if (body) {
        msg.set_body(std::move(*body),
                     content_type.empty() ? std::string("application/octet-stream") : content_type);
      } else {
        // Without it some servers (POCO among them) read an OPTIONS body until the connection
        // closes; cpprestsdk adds it by itself only for POST and PUT.
        msg.headers().set_content_length(0);
      }
    } catch (const std::exception&) {
      // No detail: the URL may carry a secret (?code=...) and errors get logged.
      return pplx::task_from_result(Failed("invalid url"));
    }

    // Each attempt has its own source: the deadline below and Shutdown() cancel through it.
    // (pplx's linked sources would leave one registration per attempt on the parent token.)
    auto attempt_cancel = std::make_shared<pplx::cancellation_token_source>();
    uint64_t attempt_id;
    {
      std::lock_guard lock(mu_);
      if (shutting_down_) return pplx::task_from_result(Failed(kShuttingDown));
      attempt_id = next_attempt_id_++;
      attempts_.emplace(attempt_id, attempt_cancel);
    }
    // cpprestsdk's own timeout restarts on every read and write, so a handler that trickles
    // its answer would never time out; this deadline bounds the whole attempt.
    auto self = shared_from_this();
    auto timed_out = std::make_shared<std::atomic<bool>>(false);
    // An answer over the limit ends the attempt as soon as it is known to be (its
    // Content-Length, else the bytes read so far): a handler cannot make the node buffer it.
    auto too_large = std::make_shared<std::atomic<bool>>(false);
    const uint64_t max_bytes = options_.max_response_bytes;
    msg.set_progress_handler([too_large, attempt_cancel, max_bytes](
                                 http::message_direction::direction direction, uint64_t bytes) {
      if (direction == http::message_direction::download && bytes > max_bytes &&
          !too_large->exchange(true)) {
        attempt_cancel->cancel();
      }
    });
    const std::optional<TimerThread::Key> deadline =
        timer_.Schedule(Clock::now() + options_.timeout, [attempt_cancel, timed_out] {
          timed_out->store(true);
          attempt_cancel->cancel();
        });
    pplx::task<http::http_response> sent;
    try {
      sent = client->request(msg, attempt_cancel->get_token());
    } catch (const std::exception&) {
      sent = pplx::task_from_exception<http::http_response>(std::current_exception());
    }
    return sent
        .then([too_large, attempt_cancel, max_bytes](http::http_response response) {
          if (response.headers().content_length() > max_bytes) {
            too_large->store(true);
            attempt_cancel->cancel();
            return pplx::task_from_result(Outcome{});
          }
          auto out = std::make_shared<Outcome>();
          out->response.status = response.status_code();
          const http::http_headers& h = response.headers();
          if (auto it = h.find(http::header_names::content_type); it != h.end()) {
            out->response.content_type = it->second;
          }
          if (auto it = h.find("ce-connectionState"); it != h.end()) {
            out->response.connection_state = it->second;
          }
          if (auto it = h.find("WebHook-Allowed-Origin"); it != h.end()) {
            out->allowed_origin = it->second;
          }
          return response.extract_vector().then([out](std::vector<unsigned char> bytes) {
            out->response.body.assign(bytes.begin(), bytes.end());
            return std::move(*out);
          });
        })
        .then([self, attempt_id, deadline, timed_out, too_large, max_bytes,
               client](pplx::task<Outcome> t) {
          // `client` rides along: a per-request client must outlive its request.
          (void)client;
          if (deadline) self->timer_.Cancel(*deadline);
          Outcome o;
          try {
            o = t.get();
          } catch (const http::http_exception& e) {
            o.transient = true;
            if (timed_out->load() || e.error_code() == std::errc::timed_out) {
              o.response = Failure(kTimedOut);
            } else {
              o.response = Failure(std::string("network error: ") + e.what());
            }
          } catch (const pplx::task_canceled&) {
            o.transient = timed_out->load();
            o.response = Failure(o.transient ? kTimedOut : kShuttingDown);
          } catch (const std::exception& e) {
            o.transient = true;
            o.response = Failure(std::string("network error: ") + e.what());
          } catch (...) {
            o.response = Failure("internal error");
          }
          if (too_large->load() || o.response.body.size() > max_bytes) {
            // A failed call, not retried: the handler would answer the same again.
            o = Outcome{};
            o.response = Failure("the answer is larger than the limit of " +
                                 std::to_string(max_bytes) + " bytes");
          }
          {
            std::lock_guard lock(self->mu_);
            self->attempts_.erase(attempt_id);
          }
          self->idle_.notify_all();
          return o;
        });
  }

  UpstreamOptions options_;
  TimerThread timer_;

  std::mutex mu_;
  std::condition_variable idle_;  // calls_ or attempts_ shrank
  bool shutting_down_ = false;
  uint64_t next_call_id_ = 0;
  uint64_t next_attempt_id_ = 0;
  // HTTP exchanges whose continuation has not run yet, to cancel them on shutdown.
  std::unordered_map<uint64_t, std::shared_ptr<pplx::cancellation_token_source>> attempts_;
  std::unordered_map<uint64_t, std::shared_ptr<CallCtx>> calls_;  // not yet finished
  std::unordered_map<std::string, std::shared_ptr<Validation>> validations_;
  std::unordered_map<std::string, std::shared_ptr<http::client::http_client>> clients_;
};

class CppRestUpstreamClient : public UpstreamClient {
 public:
  explicit CppRestUpstreamClient(UpstreamOptions options)
      : engine_(std::make_shared<Engine>(std::move(options))) {}
  ~CppRestUpstreamClient() override { engine_->Shutdown(); }

  void Call(UpstreamRequest request, std::function<void(UpstreamResponse)> done) override {
    engine_->Call(std::move(request), std::move(done));
  }
  void ResetValidations() override { engine_->ResetValidations(); }
  bool Drain(std::chrono::milliseconds limit) override { return engine_->Drain(limit); }
  void Shutdown() override { engine_->Shutdown(); }

 private:
  std::shared_ptr<Engine> engine_;
};

}  // namespace

std::unique_ptr<UpstreamClient> NewUpstreamClient(UpstreamOptions options) {
  static std::once_flag pool_once;
  std::call_once(pool_once, [threads = options.threads] {
    try {
      crossplat::threadpool::initialize_with_threads(static_cast<size_t>(std::max(1, threads)));
    } catch (const std::exception&) {
      // Another component initialised the shared pool first; use it as it is.
    }
  });
  return std::make_unique<CppRestUpstreamClient>(std::move(options));
}

Status CheckCaFile(const std::string& path) {
  BIO* bio = BIO_new_file(path.c_str(), "r");
  if (!bio) return Status::InvalidArgument("cannot read the CA file " + path);
  int certificates = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    ++certificates;
    X509_free(cert);
  }
  ERR_clear_error();  // the read that met the end of the file left an error behind
  BIO_free(bio);
  if (certificates == 0) {
    return Status::InvalidArgument("the CA file " + path + " holds no PEM certificate");
  }
  return Status::Ok();
}

}  // namespace hubcast::rest
