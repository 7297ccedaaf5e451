// The real gateway of one node in the test's own process, over a log the test shapes:
//   InterceptedLogs  in-memory LocalLogs (one per hub) whose appends pass through a test's
//                    hook first: the stand-in for a log that is slow, or whose
//                    acknowledgements arrive late. Everything else goes to the real log.
//   InProcessGateway the Gateway and HubRegistry over such logs, on 127.0.0.1:0.
//
// Thread-safety: the hook runs on whichever thread appends (event loops, workers, the test)
// and must not block; it may append now, later, or from another thread. InProcessGateway is
// started and stopped by the test's thread.
#pragma once

#include "replication/hub.h"
#include "replication/hub_log.h"
#include "replication/local_log.h"
#include "server/gateway.h"

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace hubcast::testing {

class InterceptedLogs : public replication::LogProvider {
 public:
  // Called instead of Append; `inner` is the hub's real log.
  using Hook = std::function<void(replication::HubLog& inner, storage::EntryPtr entry,
                                  replication::DurableFn durable, replication::AppliedFn applied,
                                  const std::string& request_id)>;

  explicit InterceptedLogs(Hook hook)
      : hook_(std::move(hook)), inner_(replication::LocalLogProvider::New(nullptr)) {}

  Result<std::vector<std::string>> Hubs() override { return inner_->Hubs(); }
  Result<std::unique_ptr<replication::HubLog>> Open(const HubName& hub, bool create) override {
    auto log = inner_->Open(hub, create);
    if (!log.ok()) return log.status();
    return std::unique_ptr<replication::HubLog>(
        std::make_unique<Log>(this, std::move(log).value()));
  }
  void Stop() override { inner_->Stop(); }

 private:
  class Log : public replication::HubLog {
   public:
    Log(InterceptedLogs* owner, std::unique_ptr<replication::HubLog> inner)
        : owner_(owner), inner_(std::move(inner)) {}
    void SetConsumer(Consumer c) override { inner_->SetConsumer(std::move(c)); }
    Status Start(uint64_t after) override { return inner_->Start(after); }
    void Append(storage::EntryPtr e, replication::DurableFn d, replication::AppliedFn a,
                const std::string& request_id) override {
      owner_->hook_(*inner_, std::move(e), std::move(d), std::move(a), request_id);
    }
    Result<uint64_t> Head() override { return inner_->Head(); }
    uint64_t epoch() const override { return inner_->epoch(); }

   private:
    InterceptedLogs* owner_;
    std::unique_ptr<replication::HubLog> inner_;
  };

  Hook hook_;
  std::unique_ptr<replication::LocalLogProvider> inner_;
};

class InProcessGateway {
 public:
  // `options.port` is replaced by 0: the bound port is port().
  Status Start(server::GatewayOptions options, replication::LogProvider* logs) {
    options.port = 0;
    gateway_ = std::make_unique<server::Gateway>(options);
    replication::HubRegistryOptions ro;
    ro.node_id = "node";
    ro.logs = logs;
    registry_ = std::make_unique<replication::HubRegistry>(ro, gateway_.get());
    gateway_->SetRegistry(registry_.get());
    auto port = gateway_->Start();
    if (!port.ok()) return port.status();
    port_ = *port;
    return Status::Ok();
  }
  // The gateway, then the registry; the logs are the caller's to stop afterwards. As in
  // main.cc, the gateway's callbacks end before the registry is destroyed.
  void Stop() {
    if (gateway_) gateway_->Shutdown("test over");
    if (registry_) registry_->Stop();
    if (gateway_) gateway_->Stop();
  }

  int port() const { return port_; }
  replication::HubRegistry& registry() { return *registry_; }

 private:
  std::unique_ptr<server::Gateway> gateway_;
  std::unique_ptr<replication::HubRegistry> registry_;
  int port_ = 0;
};

}  // namespace hubcast::testing
