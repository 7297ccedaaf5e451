// The README's five-line example of the C++ service SDK ("Use it from C++"), built by the
// SdkPackage integration test with nothing but `pkg-config --cflags --libs hubcast`, which also
// checks that every line of the README's code block is here. Sends "hello" to everyone in hub
// "chat" and prints alice's client URL; exits 1 with the error on failure.
#include <cstdlib>
#include <hubcast/service_client.h>
#include <iostream>

namespace {

int Fail(const hubcast::ServiceError& error) {
  std::cerr << error.ToString() << "\n";
  return 1;
}

int Run(const char* connection_string) {
  auto service = hubcast::ServiceClient::FromConnectionString(connection_string, "chat");
  if (!service) return Fail(service.error());                       // bad connection string or hub
  auto access = service->GetClientAccessUrl({.user_id = "alice"});  // for alice: access->url
  auto sent = service->SendToAll(hubcast::Message::Text("hello"));  // or ...Async(m).Then(f)
  if (!sent) std::cerr << sent.error().ToString() << "\n";          // "401 Unauthorized: ..."
  if (!sent || !access) return 1;
  std::cout << access->url << "\n";
  return 0;
}

}  // namespace

int main() {
  const char* connection_string = std::getenv("HUBCAST_CONNECTION_STRING");
  if (connection_string == nullptr) {
    std::cerr << "HUBCAST_CONNECTION_STRING is not set\n";
    return 2;
  }
  return Run(connection_string);
}
