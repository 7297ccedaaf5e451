// An example app server on the Hubcast C++ SDK: the two endpoints a browser chat needs.
//
//   GET  /negotiate[?userId=U]  200 {"url":"ws://.../client/hubs/H?access_token=..."}: what the
//                               browser's WebPubSubClient connects with
//   POST /broadcast             the request body (UTF-8 text) goes to every connection of the
//                               hub: 202, or the service's status and message
//
// Usage: HUBCAST_CONNECTION_STRING='Endpoint=...;AccessKey=...;' app_server [--port 3000]
//        [--hub chat]     (listens on 127.0.0.1; stops on SIGINT or SIGTERM)
//
// The HTTP side uses cpprestsdk's listener because the SDK already needs cpprestsdk; any HTTP
// server works. Its handlers run on cpprestsdk's thread pool, so they never wait for the
// service: they hand the SDK's answer to a callback (ServiceFuture::Then).
#include <cpprest/http_listener.h>
#include <cpprest/json.h>
#include <cpprest/uri.h>

#include <csignal>
#include <cstdlib>
#include <hubcast/service_client.h>
#include <iostream>
#include <string>

namespace {

namespace http = web::http;

void ReplyJson(const http::http_request& request, http::status_code status,
               const web::json::value& body) {
  request.reply(status, body).then([](pplx::task<void> t) {
    try {
      t.get();
    } catch (const std::exception&) {
      // The browser went away; nothing to do.
    }
  });
}

web::json::value ErrorBody(const std::string& code, const std::string& message) {
  web::json::value body;
  body["code"] = web::json::value::string(code);
  body["message"] = web::json::value::string(message);
  return body;
}

void Negotiate(const hubcast::ServiceClient& service, const http::http_request& request) {
  const auto query = web::uri::split_query(request.request_uri().query());
  hubcast::ClientAccessOptions options;
  if (auto it = query.find("userId"); it != query.end() && !it->second.empty()) {
    options.user_id = web::uri::decode(it->second);
  }
  options.roles = {"webpubsub.joinLeaveGroup", "webpubsub.sendToGroup"};
  auto access = service.GetClientAccessUrl(options);
  if (!access) {
    ReplyJson(request, http::status_codes::BadRequest,
              ErrorBody(access.error().code, access.error().message));
    return;
  }
  web::json::value body;
  body["url"] = web::json::value::string(access->url);
  ReplyJson(request, http::status_codes::OK, body);
}

void Broadcast(const hubcast::ServiceClient& service, http::http_request request) {
  request.extract_utf8string(true).then([service, request](pplx::task<std::string> body) {
    std::string text;
    try {
      text = body.get();
    } catch (const std::exception& e) {
      ReplyJson(request, http::status_codes::BadRequest, ErrorBody("BadRequest", e.what()));
      return;
    }
    service.SendToAllAsync(hubcast::Message::Text(std::move(text)))
        .Then([request](hubcast::ServiceResult<void> sent) {
          if (sent) {
            ReplyJson(request, http::status_codes::Accepted, web::json::value::object());
            return;
          }
          // The service's own status when it answered, 502 when it did not.
          const hubcast::ServiceError& e = sent.error();
          ReplyJson(request, e.http_status > 0 ? e.http_status : http::status_codes::BadGateway,
                    ErrorBody(e.code, e.message));
        });
  });
}

}  // namespace

int main(int argc, char** argv) {
  std::string port = "3000", hub = "chat";
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 < argc && flag == "--port") {
      port = argv[i + 1];
    } else if (i + 1 < argc && flag == "--hub") {
      hub = argv[i + 1];
    } else {
      std::cerr << "usage: app_server [--port N] [--hub H]\n";
      return 2;
    }
  }
  const char* cs = std::getenv("HUBCAST_CONNECTION_STRING");
  if (cs == nullptr) {
    std::cerr << "app_server: set HUBCAST_CONNECTION_STRING\n";
    return 2;
  }
  auto service = hubcast::ServiceClient::FromConnectionString(cs, hub);
  if (!service) {
    std::cerr << "app_server: " << service.error().ToString() << "\n";
    return 2;
  }

  // Signals are taken by sigwait below: block them before the listener starts its threads.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  http::experimental::listener::http_listener listener("http://127.0.0.1:" + port);
  const hubcast::ServiceClient& client = *service;
  listener.support(http::methods::GET, [&client](http::http_request request) {
    if (request.relative_uri().path() == "/negotiate") {
      Negotiate(client, request);
    } else {
      ReplyJson(request, http::status_codes::NotFound, ErrorBody("NotFound", "no such path"));
    }
  });
  listener.support(http::methods::POST, [&client](http::http_request request) {
    if (request.relative_uri().path() == "/broadcast") {
      Broadcast(client, request);
    } else {
      ReplyJson(request, http::status_codes::NotFound, ErrorBody("NotFound", "no such path"));
    }
  });
  try {
    listener.open().wait();
  } catch (const std::exception& e) {
    std::cerr << "app_server: cannot listen on 127.0.0.1:" << port << ": " << e.what() << "\n";
    return 2;
  }
  std::cout << "app_server: hub " << hub << " on http://127.0.0.1:" << port << std::endl;

  int signal = 0;
  sigwait(&signals, &signal);
  listener.close().wait();
  return 0;
}
