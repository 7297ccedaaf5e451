#include "base/log.h"
#include "replication/nats_internal.h"

#include <atomic>
#include <mutex>
#include <vector>

namespace hubcast::replication {
namespace nats {

Status FromNats(natsStatus s, const std::string& what, jsErrCode code) {
  if (s == NATS_OK) return Status::Ok();
  std::string message = what + ": " + natsStatus_GetText(s);
  if (code != 0) message += " (JetStream error " + std::to_string(static_cast<int>(code)) + ")";
  switch (s) {
    case NATS_NOT_FOUND:
      return Status::NotFound(message);
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
      return Status::InvalidArgument(message);
    default:
      // Timeouts, lost connections, no responders, server errors: the cluster is not there
      // for now; callers answer 503 and retry.
      return Status::Unavailable(message);
  }
}

namespace {

struct OptionsDeleter {
  void operator()(natsOptions* o) const { natsOptions_Destroy(o); }
};

class ConnectionImpl final : public Connection {
 public:
  explicit ConnectionImpl(NatsConnectionOptions options) : options_(std::move(options)) {}
  ~ConnectionImpl() override { Close(); }

  Status Init() {
    natsOptions* raw = nullptr;
    if (natsOptions_Create(&raw) != NATS_OK) return Status::Internal("nats: out of memory");
    std::unique_ptr<natsOptions, OptionsDeleter> opts(raw);
    std::vector<const char*> urls;
    for (const auto& u : options_.urls) urls.push_back(u.c_str());
    if (urls.empty()) return Status::InvalidArgument("--nats needs at least one server URL");
    natsStatus s = natsOptions_SetServers(opts.get(), urls.data(), static_cast<int>(urls.size()));
    if (s != NATS_OK) return FromNats(s, "--nats");
    if (!options_.credentials_file.empty()) {
      s = natsOptions_SetUserCredentialsFromFiles(opts.get(), options_.credentials_file.c_str(),
                                                  nullptr);
      if (s != NATS_OK) return FromNats(s, "--nats-creds " + options_.credentials_file);
    }
    if (!options_.tls_ca_file.empty()) {
      s = natsOptions_LoadCATrustedCertificates(opts.get(), options_.tls_ca_file.c_str());
      if (s != NATS_OK) return FromNats(s, "--nats-tls-ca " + options_.tls_ca_file);
    }
    if (!options_.name.empty()) natsOptions_SetName(opts.get(), options_.name.c_str());
    natsOptions_SetMaxReconnect(opts.get(), -1);
    natsOptions_SetReconnectWait(opts.get(), 250);
    natsOptions_SetPingInterval(opts.get(), 2000);
    natsOptions_SetMaxPingsOut(opts.get(), 2);
    natsOptions_SetFailRequestsOnDisconnect(opts.get(), true);
    natsOptions_SetNoEcho(opts.get(), false);
    // Subscriptions share a bounded pool of delivery threads instead of one thread each (one
    // consumer per hub would otherwise mean a thread per hub).
    natsOptions_UseGlobalMessageDelivery(opts.get(), true);
    natsOptions_SetDisconnectedCB(opts.get(), &ConnectionImpl::OnDisconnected, this);
    natsOptions_SetReconnectedCB(opts.get(), &ConnectionImpl::OnReconnected, this);
    natsOptions_SetRetryOnFailedConnect(opts.get(), true, &ConnectionImpl::OnReconnected, this);
    s = natsConnection_Connect(&nc_, opts.get());
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) return FromNats(s, "connecting to NATS");
    connected_ = natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = options_.request_timeout.count();
    jo.PublishAsync.AckHandler = &ConnectionImpl::OnAck;
    jo.PublishAsync.AckHandlerClosure = this;
    // The appenders are bounded by admission; never stall a log thread in the library.
    jo.PublishAsync.MaxPending = 1 << 20;
    s = natsConnection_JetStream(&js_, nc_, &jo);
    if (s != NATS_OK) return FromNats(s, "creating the JetStream context");
    return Status::Ok();
  }

  bool connected() const override { return connected_.load(std::memory_order_acquire); }

  void Publish(const std::string& subject, std::string_view data) override {
    if (!connected()) return;
    (void)natsConnection_Publish(nc_, subject.c_str(), data.data(), static_cast<int>(data.size()));
  }

  Status Subscribe(const std::string& subject, Handler handler) override {
    auto* h = new Handler(std::move(handler));
    natsSubscription* sub = nullptr;
    natsStatus s = natsConnection_Subscribe(&sub, nc_, subject.c_str(), &ConnectionImpl::OnMsg, h);
    if (s != NATS_OK) {
      delete h;
      return FromNats(s, "subscribing to " + subject);
    }
    std::lock_guard lock(mu_);
    subs_.push_back({sub, h});
    return Status::Ok();
  }

  void OnConnectionChange(std::function<void(bool)> callback) override {
    std::lock_guard lock(mu_);
    watchers_.push_back(std::move(callback));
  }

  void Close() override {
    std::vector<std::pair<natsSubscription*, Handler*>> subs;
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
      closed_ = true;
      subs.swap(subs_);
    }
    for (auto& [sub, h] : subs) natsSubscription_Unsubscribe(sub);
    if (js_) jsCtx_Destroy(js_);
    js_ = nullptr;
    if (nc_) {
      natsConnection_Close(nc_);
      natsConnection_Destroy(nc_);
    }
    nc_ = nullptr;
    connected_ = false;
    // Callbacks may still be running on delivery threads until the subscriptions are
    // destroyed; destroy them before their handlers.
    for (auto& [sub, h] : subs) {
      natsSubscription_Destroy(sub);
      delete h;
    }
  }

  natsConnection* raw() override { return nc_; }
  jsCtx* js() override { return js_; }
  void SetAckHandler(AckHandler handler) override {
    std::lock_guard lock(mu_);
    ack_handler_ = std::move(handler);
  }
  const NatsConnectionOptions& options() const override { return options_; }

 private:
  static void OnMsg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
    MsgPtr owned(msg);
    auto* handler = static_cast<Handler*>(closure);
    const char* data = natsMsg_GetData(msg);
    (*handler)(natsMsg_GetSubject(msg),
               std::string_view(data ? data : "", static_cast<size_t>(natsMsg_GetDataLength(msg))));
  }
  static void OnDisconnected(natsConnection*, void* closure) {
    static_cast<ConnectionImpl*>(closure)->Changed(false);
  }
  static void OnReconnected(natsConnection*, void* closure) {
    static_cast<ConnectionImpl*>(closure)->Changed(true);
  }
  static void OnAck(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* closure) {
    auto* self = static_cast<ConnectionImpl*>(closure);
    AckHandler handler;
    {
      std::lock_guard lock(self->mu_);
      handler = self->ack_handler_;
    }
    if (handler) {
      handler(msg, ack, error);
    } else {
      natsMsg_Destroy(msg);
    }
  }
  void Changed(bool up) {
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
    }
    bool was = connected_.exchange(up);
    if (was == up) return;
    Logger("nats").Warn(up ? "connected to NATS" : "lost the connection to NATS");
    std::vector<std::function<void(bool)>> watchers;
    {
      std::lock_guard lock(mu_);
      watchers = watchers_;
    }
    for (auto& w : watchers) w(up);
  }

  const NatsConnectionOptions options_;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  std::atomic<bool> connected_{false};
  std::mutex mu_;
  bool closed_ = false;
  std::vector<std::pair<natsSubscription*, Handler*>> subs_;
  std::vector<std::function<void(bool)>> watchers_;
  AckHandler ack_handler_;
};

}  // namespace
}  // namespace nats

Result<std::unique_ptr<NatsConnection>> NatsConnection::Connect(
    const NatsConnectionOptions& options) {
  static std::once_flag init;
  std::call_once(init, [] {
    nats_Open(-1);
    nats_SetMessageDeliveryPoolSize(4);
  });
  auto c = std::make_unique<nats::ConnectionImpl>(options);
  if (Status s = c->Init(); !s.ok()) return s;
  return std::unique_ptr<NatsConnection>(std::move(c));
}

}  // namespace hubcast::replication
