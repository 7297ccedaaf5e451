#include "rest/upstream_client.h"

#include "base/strings.h"
#include "rest/http_client.h"
#include "rest/jwt.h"

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
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hubcast::rest {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kShuttingDown[] = "shutting down";
constexpr char kTimedOut[] = "timed out";
constexpr char kValidationFailed[] = "abuse protection validation failed: ";
// How long the destructor waits for cancelled requests and running `done` callbacks.
constexpr std::chrono::seconds kShutdownGrace{5};

using Headers = HttpClientHeaders;

UpstreamResponse Failure(std::string error) {
  UpstreamResponse r;
  r.timed_out = error == kTimedOut;
  r.error = std::move(error);
  return r;
}

// Repeated response headers arrive joined with ",", so one split covers both the
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

// The threads that run `done` (and the work around it), so the HTTP event thread never runs
// a caller's code. The state is shared with the threads: Stop may run on one of them (a
// `done` that destroys the client), which then detaches and ends after its task.
class CallbackPool {
 public:
  explicit CallbackPool(int threads) : state_(std::make_shared<State>()) {
    for (int i = 0; i < std::max(1, threads); ++i) {
      state_->threads.emplace_back([state = state_] { Run(*state); });
    }
  }
  ~CallbackPool() { Stop(); }

  void Execute(std::function<void()> fn) {
    {
      std::lock_guard lock(state_->mu);
      if (state_->stopping) return;
      state_->queue.push_back(std::move(fn));
    }
    state_->cv.notify_one();
  }

  // Runs what is queued, then ends the threads.
  void Stop() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(state_->mu);
      state_->stopping = true;
      threads.swap(state_->threads);
    }
    state_->cv.notify_all();
    for (std::thread& t : threads) {
      if (t.get_id() == std::this_thread::get_id()) {
        t.detach();
      } else if (t.joinable()) {
        t.join();
      }
    }
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::function<void()>> queue;
    std::vector<std::thread> threads;
    bool stopping = false;
  };

  static void Run(State& state) {
    std::unique_lock lock(state.mu);
    while (true) {
      state.cv.wait(lock, [&] { return state.stopping || !state.queue.empty(); });
      if (state.queue.empty()) return;
      std::function<void()> fn = std::move(state.queue.front());
      state.queue.pop_front();
      lock.unlock();
      try {
        fn();
      } catch (...) {
        // A throwing task must not take a pool thread (and the process) down with it.
      }
      fn = nullptr;
      lock.lock();
    }
  }

  std::shared_ptr<State> state_;
};

struct CallCtx {
  uint64_t id = 0;
  UpstreamRequest request;
  std::string signature;  // computed once in Call(), for every attempt
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

Outcome Failed(std::string error, bool transient = false) {
  Outcome o;
  o.response = Failure(std::move(error));
  o.transient = transient;
  return o;
}

Outcome ToOutcome(HttpClientResponse r) {
  switch (r.error) {
    case HttpError::kNone:
      break;
    case HttpError::kTimedOut:
      return Failed(kTimedOut, /*transient=*/true);
    case HttpError::kNetwork:
      return Failed("network error: " + r.message, /*transient=*/true);
    case HttpError::kShuttingDown:
      return Failed(kShuttingDown);
    case HttpError::kTooLarge:  // not retried: the handler would answer the same again
    case HttpError::kInvalidRequest:
      return Failed(std::move(r.message));
    case HttpError::kMalformed:
      return Failed("invalid answer: " + r.message);
  }
  Outcome o;
  o.response.status = r.status;
  o.response.content_type = r.Header("Content-Type").value_or("");
  o.response.connection_state = r.Header("ce-connectionState");
  o.allowed_origin = r.Header("WebHook-Allowed-Origin", ",");
  o.response.body = std::move(r.body);
  return o;
}

// The shared state behind an UpstreamClient. Completions hold a shared_ptr to it, so one that
// outlives the client (after the bounded shutdown wait) still touches live memory; it then
// finds its call finished and does nothing.
//
// Threads: HTTP completions arrive on the HttpClient's event thread, which only counts them
// and hands them to the CallbackPool; validation, retries and `done` run there; back-offs wait
// on the TimerThread.
//
// Shutdown protocol:
//   1. shutting_down_ is set; calls started from then on finish with "shutting down".
//   2. The timer thread is joined; scheduled retries are dropped.
//   3. The HTTP client is shut down: every exchange in flight completes with "shutting down"
//      (its completion is queued on the pool); none starts any more.
//   4. Every registered call gets a pool task that finishes it with "shutting down"; the
//      `finished` flag makes whichever completion comes first the only one.
//   5. Shutdown waits (at most kShutdownGrace) until no call is registered (every `done` has
//      returned) and no HTTP exchange is in flight, then ends the pool.
class Engine;
// The engine whose `done` callback this thread is running, if any.
thread_local const Engine* running_done = nullptr;

class Engine : public std::enable_shared_from_this<Engine> {
 public:
  explicit Engine(UpstreamOptions options) : options_(std::move(options)), pool_(options_.threads) {
    options_.max_attempts = std::max(1, options_.max_attempts);
    HttpClientOptions http;
    http.ca_file = options_.ca_file;
    http.max_response_bytes = options_.max_response_bytes;
    Result<std::unique_ptr<HttpClient>> client = HttpClient::Create(std::move(http));
    if (client.ok()) {
      http_ = std::move(client).value();
    } else {
      http_error_ = client.status().message();  // CheckCaFile rejected it at start-up already
    }
  }

  void Call(UpstreamRequest request, std::function<void(UpstreamResponse)> done) {
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
    return idle_.wait_for(lock, limit, [this] { return calls_.empty() && in_flight_ == 0; });
  }

  void Shutdown() {
    std::vector<std::shared_ptr<CallCtx>> pending;
    {
      std::lock_guard lock(mu_);
      if (shutting_down_) return;
      shutting_down_ = true;
      for (const auto& [id, ctx] : calls_) pending.push_back(ctx);
    }
    timer_.Stop();
    if (http_) http_->Shutdown();
    for (const std::shared_ptr<CallCtx>& ctx : pending) FinishLater(ctx, Failure(kShuttingDown));
    pending.clear();

    std::unordered_map<std::string, std::shared_ptr<Validation>> validations;
    {
      std::unique_lock lock(mu_);
      // A `done` that destroys the client is itself a registered call: do not wait for it.
      const size_t own = running_done == this ? 1 : 0;
      idle_.wait_for(lock, kShutdownGrace,
                     [this, own] { return calls_.size() <= own && in_flight_ == 0; });
      validations.swap(validations_);
    }
    pool_.Stop();
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

  // Runs `done` at most once per call, then unregisters the call. Only on a pool thread.
  void Finish(const std::shared_ptr<CallCtx>& ctx, UpstreamResponse response) {
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
    pool_.Execute(
        [self = shared_from_this(), ctx = std::move(ctx),
         response = std::move(response)]() mutable { self->Finish(ctx, std::move(response)); });
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
    const HttpClientHeaders headers = {{"WebHook-Request-Origin", options_.origin},
                                       {"ce-awpsversion", "1.0"}};
    Send("OPTIONS", url, headers, std::nullopt, "", [self, url, headers, start](Outcome o) {
      const int s = o.response.status;
      if (s != 404 && s != 405) return self->CompleteValidation(start, o);
      self->Send("GET", url, headers, std::nullopt, "",
                 [self, start](Outcome o) { self->CompleteValidation(start, o); });
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

  void CompleteValidation(const std::shared_ptr<Validation>& v, const Outcome& o) {
    const std::string reason = ValidationError(o, options_.origin);
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
    Send("POST", req.url, EventHeaders(req, ctx->signature, options_), req.body, req.content_type,
         [self, ctx](Outcome o) { self->OnAttemptDone(ctx, std::move(o)); });
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

  // One HTTP exchange; `then` runs on a pool thread with every failure as a status-0
  // response. Connection reuse and the safe retry on a fresh connection are the HttpClient's
  // (rest/http_client.h): a request that may have reached the handler is never resent here
  // unless the call is retryable.
  void Send(const char* method, const std::string& url, HttpClientHeaders headers,
            std::optional<std::string> body, const std::string& content_type,
            std::function<void(Outcome)> then) {
    auto self = shared_from_this();
    auto deliver = [self, then = std::move(then)](Outcome o) mutable {
      self->pool_.Execute(
          [then = std::move(then), o = std::move(o)]() mutable { then(std::move(o)); });
    };
    if (!http_) return deliver(Failed(http_error_));
    HttpClientRequest request;
    request.method = method;
    request.url = url;
    request.headers = std::move(headers);
    request.timeout = options_.timeout;
    if (body) {
      request.headers.emplace_back(
          "Content-Type", content_type.empty() ? "application/octet-stream" : content_type);
      request.body = std::move(*body);
    }
    {
      std::lock_guard lock(mu_);
      if (shutting_down_) return deliver(Failed(kShuttingDown));
      ++in_flight_;
    }
    http_->Send(std::move(request),
                [self, deliver = std::move(deliver)](HttpClientResponse r) mutable {
                  deliver(ToOutcome(std::move(r)));
                  {
                    std::lock_guard lock(self->mu_);
                    --self->in_flight_;
                  }
                  self->idle_.notify_all();
                });
  }

  UpstreamOptions options_;
  TimerThread timer_;
  CallbackPool pool_;
  std::unique_ptr<HttpClient> http_;
  std::string http_error_;  // why http_ is null

  std::mutex mu_;
  std::condition_variable idle_;  // calls_ or in_flight_ shrank
  bool shutting_down_ = false;
  uint64_t next_call_id_ = 0;
  size_t in_flight_ = 0;  // HTTP exchanges whose completion has not been queued yet
  std::unordered_map<uint64_t, std::shared_ptr<CallCtx>> calls_;  // not yet finished
  std::unordered_map<std::string, std::shared_ptr<Validation>> validations_;
};

class PooledUpstreamClient : public UpstreamClient {
 public:
  explicit PooledUpstreamClient(UpstreamOptions options)
      : engine_(std::make_shared<Engine>(std::move(options))) {}
  ~PooledUpstreamClient() override { engine_->Shutdown(); }

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
  return std::make_unique<PooledUpstreamClient>(std::move(options));
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
