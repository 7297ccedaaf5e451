// Client SDK 1.1 invocations: `invoke` calls the event handler like `event` does, and the
// handler's answer comes back as `invokeResponse` (docs/PROTOCOL-DECISIONS.md, "Invocations").
// Unlike `event`, an invocation does not pause the connection: several may be in flight, and
// `cancelInvocation` (Handle) reaches the service while one waits.
#include "base/log.h"
#include "server/client_connection.h"

namespace hubcast::server {
namespace {

// In flight at once per connection: enough for any client, bounded for the service.
constexpr size_t kMaxInvocations = 128;

InvokeResult Failed(std::string name, std::string message) {
  InvokeResult r;
  r.error_name = std::move(name);
  r.error_message = std::move(message);
  return r;
}

// The error name of a handler's refusal: its status, in the names acks use.
std::string RefusalName(int status) {
  switch (status) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    default:
      return "InternalServerError";
  }
}

}  // namespace

void ClientConnection::HandleInvoke(ClientMessage& m) {
  const std::string id = m.invocation_id;
  auto fail = [&](std::string name, std::string why) {
    SendControl(codec_->InvokeResponse(id, Failed(std::move(name), std::move(why))));
  };
  if (m.invalid_reason) {
    if (id.empty()) {
      LogIgnored(m, *m.invalid_reason);  // nothing to answer to
    } else {
      fail("BadRequest", *m.invalid_reason);
    }
    return;
  }
  if (invocations_.get().count(id)) {
    fail("BadRequest", "Invocation id '" + id + "' is already waiting for an answer.");
    return;
  }
  if (invocations_.get().size() >= kMaxInvocations) {
    fail("TooManyRequests", "More than " + std::to_string(kMaxInvocations) +
                                " invocations of this connection are waiting for answers.");
    return;
  }
  const std::string event = m.event;
  bool called = CallEventHandler(event, m.data_type, std::move(m.data),
                                 [id, event](ClientConnection& c, const UpstreamAnswer& a) {
                                   c.FinishInvocation(id, event, a);
                                 });
  if (!called) {
    fail("InternalServerError", "No event handler is configured for event '" + event + "'.");
    return;
  }
  invocations_.mut().insert(id);
}

void ClientConnection::FinishInvocation(const std::string& id, const std::string& event,
                                        const UpstreamAnswer& a) {
  if (state_ == State::kEnded) return;
  ApplyAnswerState(a);  // the handler ran: what it set stands, cancelled or not
  const bool waiting = invocations_.mut().erase(id) != 0;
  invocations_.Trim();
  if (!waiting) return;  // cancelled: nobody waits for the answer
  if (!a.ok) {
    std::string why = "The event handler for '" + event + "' ";
    if (a.timed_out) {
      SendControl(codec_->InvokeResponse(id, Failed("Timeout", why + "did not answer in time.")));
      return;
    }
    if (a.status == 0) {
      why += "failed: " + a.error;
    } else {
      why += "answered " + std::to_string(a.status);
      // The handler's own words (express: res.fail(code, detail)), bounded.
      if (!a.body.empty()) why += ": " + a.body.substr(0, 1024);
    }
    std::string name = a.status == 0 ? "InternalServerError" : RefusalName(a.status);
    SendControl(codec_->InvokeResponse(id, Failed(std::move(name), std::move(why))));
    return;
  }
  InvokeResult r;
  r.success = true;
  if (!a.body.empty()) {
    r.data_type = AnswerDataType(a.content_type, a.body);
    r.data = a.body;
  }
  SendControl(codec_->InvokeResponse(id, r));
}

}  // namespace hubcast::server
