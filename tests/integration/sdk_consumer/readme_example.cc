// The README's five-line example of the C++ service SDK, built by the SdkPackage integration
// test with nothing but `pkg-config --cflags --libs hubcast`. Prints a client URL for alice and
// sends "hello" to everyone in hub "chat"; exits 1 with the error on failure.
#include <cstdlib>
#include <hubcast/service_client.h>
#include <iostream>

int main() {
  const char* cs = std::getenv("HUBCAST_CONNECTION_STRING");
  if (cs == nullptr) return std::cerr << "HUBCAST_CONNECTION_STRING is not set\n", 2;

  auto service = hubcast::ServiceClient::FromConnectionString(cs, "chat");
  if (!service) return std::cerr << service.error().ToString() << "\n", 1;
  auto access = service->GetClientAccessUrl({.user_id = "alice"});  // give access->url to alice
  auto sent = service->SendToAll(hubcast::Message::Text("hello"));
  if (!sent) return std::cerr << sent.error().ToString() << "\n", 1;

  std::cout << access->url << "\n";
  return 0;
}
