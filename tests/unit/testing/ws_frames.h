// Reading server frames back in tests: the server's frames are unmasked, and WsReader wants
// the masked frames clients send, so the header is decoded here. Test-only.
#pragma once

#include "server/ws_frame.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace hubcast::testing {

// One whole unmasked frame: its opcode and payload (the test fails on a short frame).
inline std::pair<server::WsOpcode, std::string> Unframe(std::string_view frame) {
  EXPECT_GE(frame.size(), 2u);
  if (frame.size() < 2) return {server::WsOpcode::kClose, ""};
  auto opcode = static_cast<server::WsOpcode>(static_cast<uint8_t>(frame[0]) & 0x0f);
  size_t len = static_cast<uint8_t>(frame[1]) & 0x7f, at = 2;
  if (len == 126) {
    len = (size_t(uint8_t(frame[2])) << 8) | uint8_t(frame[3]);
    at = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | uint8_t(frame[2 + i]);
    at = 10;
  }
  EXPECT_EQ(frame.size(), at + len);
  return {opcode, std::string(frame.substr(at))};
}

}  // namespace hubcast::testing
