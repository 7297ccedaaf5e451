// A minimal blocking WebSocket client (RFC 6455) for integration tests: one TCP connection to
// 127.0.0.1 (plain, or TLS after UseTls: wss://), the upgrade handshake (with an optional
// subprotocol), masked client frames, and reading whole messages with a deadline. Pings are
// answered with pongs while reading. Hostile-client tests also write hand-made frames
// (EncodeFrame: any opcode, RSV bits, unmasked, a lying length) and read single frames.
//
// Written from the RFC, independent of the server's frame code, so a test exercises the
// server's framing rather than sharing its bugs. Header-only (OpenSSL for SHA-1 of the accept
// key and for TLS; integration_tests links OpenSSL). Not thread-safe: one thread per client.
#pragma once

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "tests/integration/test_stream.h"
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>

namespace hubcast::testing {

enum class WsOp : uint8_t {
  kContinuation = 0,
  kText = 1,
  kBinary = 2,
  kClose = 8,
  kPing = 9,
  kPong = 10
};

struct WsMessage {
  WsOp op = WsOp::kText;
  std::string payload;
  // For kClose: the status code (1005 when the frame had none) and reason.
  uint16_t close_code = 0;
  std::string close_reason;
};

class WsClient {
 public:
  WsClient() = default;
  ~WsClient() { Close(); }
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  // Later Connects use TLS (wss://), verifying the server against options.ca_file.
  void UseTls(TlsClientOptions options) { tls_ = std::move(options); }

  // Connects and upgrades. `target` is the request target ("/client/hubs/h?access_token=..").
  // An empty `subprotocol` offers none. Returns false with error() set on any failure; the
  // HTTP status of a refused upgrade is in http_status().
  bool Connect(int port, const std::string& target, const std::string& subprotocol = "",
               std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    Close();
    error_.clear();
    http_status_ = 0;
    buffer_.clear();
    const bool connected = tls_ ? stream_.ConnectTls(port, *tls_, timeout) : stream_.Connect(port);
    if (!connected) return Fail(stream_.error());
    std::string key_bytes(16, '\0');
    for (char& c : key_bytes) c = static_cast<char>(Random() & 0xff);
    const std::string key = Base64(key_bytes);
    std::string request = "GET " + target + " HTTP/1.1\r\n";
    request += "Host: 127.0.0.1:" + std::to_string(port) + "\r\n";
    request += "Upgrade: websocket\r\nConnection: Upgrade\r\n";
    request += "Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n";
    if (!subprotocol.empty()) request += "Sec-WebSocket-Protocol: " + subprotocol + "\r\n";
    request += "\r\n";
    if (!SendAll(request)) return false;

    const auto deadline = std::chrono::steady_clock::now() + timeout;
    size_t head_end;
    while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!ReadMore(deadline)) return Fail("handshake: " + error_);
    }
    std::string head = buffer_.substr(0, head_end + 2);
    buffer_.erase(0, head_end + 4);
    if (head.rfind("HTTP/1.1 ", 0) != 0 || head.size() < 12) {
      return Fail("handshake: not an HTTP/1.1 response: " + head.substr(0, 80));
    }
    http_status_ = std::atoi(head.c_str() + 9);
    if (http_status_ != 101) {
      return Fail("handshake refused with HTTP " + std::to_string(http_status_) + ": " + head);
    }
    unsigned char digest[SHA_DIGEST_LENGTH];
    const std::string accept_input = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    SHA1(reinterpret_cast<const unsigned char*>(accept_input.data()), accept_input.size(), digest);
    const std::string expected_accept =
        Base64(std::string(reinterpret_cast<const char*>(digest), sizeof digest));
    if (HeaderValue(head, "sec-websocket-accept") != expected_accept) {
      return Fail("handshake: wrong Sec-WebSocket-Accept in " + head);
    }
    protocol_ = HeaderValue(head, "sec-websocket-protocol");
    return true;
  }

  bool connected() const { return stream_.open(); }
  const TestStream& stream() const { return stream_; }
  TestStream& mutable_stream() { return stream_; }
  const std::string& error() const { return error_; }
  int http_status() const { return http_status_; }
  // The subprotocol the server selected ("" for none).
  const std::string& protocol() const { return protocol_; }

  bool SendText(std::string_view text) { return SendFrame(WsOp::kText, text); }
  bool SendBinary(std::string_view bytes) { return SendFrame(WsOp::kBinary, bytes); }
  bool SendClose(uint16_t code, std::string_view reason = "") {
    std::string payload;
    payload += static_cast<char>(code >> 8);
    payload += static_cast<char>(code & 0xff);
    payload.append(reason);
    return SendFrame(WsOp::kClose, payload);
  }

  // One whole message (text, binary or close), reassembled from fragments; pings are
  // answered, pongs skipped. nullopt on timeout, EOF or a protocol error (see error()).
  std::optional<WsMessage> Read(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::optional<WsMessage> partial;
    while (stream_.open()) {
      std::optional<std::pair<uint8_t, std::string>> frame = ParseFrame();
      if (!frame) {
        if (!stream_.open() || !ReadMore(deadline)) return std::nullopt;  // error() says why
        continue;
      }
      const bool fin = (frame->first & 0x80) != 0;
      const auto op = static_cast<WsOp>(frame->first & 0x0f);
      if (op == WsOp::kPing) {
        SendFrame(WsOp::kPong, frame->second);
        continue;
      }
      if (op == WsOp::kPong) continue;
      if (op == WsOp::kClose) {
        WsMessage close;
        close.op = WsOp::kClose;
        close.payload = frame->second;
        close.close_code = 1005;
        if (frame->second.size() >= 2) {
          close.close_code =
              static_cast<uint16_t>((static_cast<unsigned char>(frame->second[0]) << 8) |
                                    static_cast<unsigned char>(frame->second[1]));
          close.close_reason = frame->second.substr(2);
        }
        return close;
      }
      if (op == WsOp::kContinuation) {
        if (!partial) {
          error_ = "protocol: continuation without a message";
          return std::nullopt;
        }
        partial->payload += frame->second;
      } else {
        partial = WsMessage{op, frame->second, 0, ""};
      }
      if (fin) return partial;
    }
    return std::nullopt;
  }

  // The next text message, skipping nothing: nullopt if the next message is not text.
  std::optional<std::string> ReadText(std::chrono::milliseconds timeout) {
    std::optional<WsMessage> message = Read(timeout);
    if (!message || message->op != WsOp::kText) return std::nullopt;
    return message->payload;
  }

  // Hostile-client tests: bytes written as they are (a frame made by EncodeFrame, or a part of
  // one), and single frames read as they come (pings and pongs included, nothing answered).
  bool SendRaw(std::string_view bytes) {
    if (!stream_.open()) return false;
    return SendAll(std::string(bytes));
  }
  std::optional<std::pair<uint8_t, std::string>> ReadFrame(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (stream_.open()) {
      if (auto frame = ParseFrame()) return frame;
      if (!stream_.open() || !ReadMore(deadline)) return std::nullopt;
    }
    return std::nullopt;
  }

  // A client frame: first byte `b0` (FIN, RSV bits, opcode), masked unless `mask` is false,
  // with the payload length field set to `claimed_length` when given (a lie about the size).
  static std::string EncodeFrame(uint8_t b0, std::string_view payload, bool mask = true,
                                 std::optional<uint64_t> claimed_length = std::nullopt) {
    std::string frame;
    frame += static_cast<char>(b0);
    const uint64_t size = claimed_length.value_or(payload.size());
    const char mask_bit = mask ? static_cast<char>(0x80) : 0;
    if (size < 126) {
      frame += static_cast<char>(mask_bit | static_cast<char>(size));
    } else if (size <= 0xffff) {
      frame += static_cast<char>(mask_bit | 126);
      frame += static_cast<char>(size >> 8);
      frame += static_cast<char>(size & 0xff);
    } else {
      frame += static_cast<char>(mask_bit | 127);
      for (int shift = 56; shift >= 0; shift -= 8)
        frame += static_cast<char>((size >> shift) & 0xff);
    }
    if (!mask) return frame.append(payload);
    const uint32_t random = Random();
    char key[4];
    for (int i = 0; i < 4; ++i) key[i] = static_cast<char>((random >> (8 * i)) & 0xff);
    frame.append(key, 4);
    for (size_t i = 0; i < payload.size(); ++i) frame += static_cast<char>(payload[i] ^ key[i % 4]);
    return frame;
  }

  // Drops the TCP connection without a close frame (like a network failure).
  void Close() { stream_.Close(); }

 private:
  bool Fail(std::string message) {
    error_ = std::move(message);
    Close();
    return false;
  }

  static uint32_t Random() {
    // One per thread: tests drive clients from several threads (ThreadSanitizer saw a shared
    // one raced).
    thread_local std::mt19937 generator{std::random_device{}()};
    return generator();
  }

  static std::string Base64(const std::string& bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(bytes.data()),
                            static_cast<int>(bytes.size()));
    out.resize(static_cast<size_t>(n));
    return out;
  }

  // The value of a header in a response head (name lower-case), trimmed; "" if absent.
  static std::string HeaderValue(const std::string& head, const std::string& name) {
    size_t pos = 0;
    while ((pos = head.find("\r\n", pos)) != std::string::npos) {
      pos += 2;
      size_t end = head.find("\r\n", pos);
      std::string line = head.substr(pos, end == std::string::npos ? end : end - pos);
      size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string key = line.substr(0, colon);
      for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (key != name) continue;
      std::string value = line.substr(colon + 1);
      size_t b = value.find_first_not_of(" \t");
      size_t e = value.find_last_not_of(" \t");
      return b == std::string::npos ? "" : value.substr(b, e - b + 1);
    }
    return "";
  }

  bool SendAll(const std::string& data) {
    if (!stream_.Send(data)) return Fail("send: " + stream_.error());
    return true;
  }

  bool SendFrame(WsOp op, std::string_view payload) {
    if (!stream_.open()) return false;
    return SendAll(EncodeFrame(0x80 | static_cast<uint8_t>(op), payload));
  }

  // Reads what is available into buffer_, waiting until `deadline`. False on timeout (error_
  // "timeout"), EOF or an error (the connection is closed then).
  bool ReadMore(std::chrono::steady_clock::time_point deadline) {
    switch (stream_.Receive(&buffer_, deadline)) {
      case TestStream::Got::kData:
        return true;
      case TestStream::Got::kTimeout:
        error_ = "timeout";
        return false;
      case TestStream::Got::kEof:
        return Fail("eof");
      default:
        return Fail(stream_.error());
    }
  }

  // One complete frame from buffer_ (first byte, payload), or nullopt if more bytes are needed.
  std::optional<std::pair<uint8_t, std::string>> ParseFrame() {
    if (buffer_.size() < 2) return std::nullopt;
    const auto b0 = static_cast<uint8_t>(buffer_[0]);
    const auto b1 = static_cast<uint8_t>(buffer_[1]);
    if (b1 & 0x80) {
      error_ = "protocol: the server masked a frame";
      Close();
      return std::nullopt;
    }
    uint64_t size = b1 & 0x7f;
    size_t header = 2;
    if (size == 126) {
      if (buffer_.size() < 4) return std::nullopt;
      size = (static_cast<uint64_t>(static_cast<uint8_t>(buffer_[2])) << 8) |
             static_cast<uint8_t>(buffer_[3]);
      header = 4;
    } else if (size == 127) {
      if (buffer_.size() < 10) return std::nullopt;
      size = 0;
      for (int i = 0; i < 8; ++i) size = (size << 8) | static_cast<uint8_t>(buffer_[2 + i]);
      header = 10;
    }
    if (buffer_.size() < header + size) return std::nullopt;
    std::pair<uint8_t, std::string> frame{b0, buffer_.substr(header, size)};
    buffer_.erase(0, header + size);
    return frame;
  }

  TestStream stream_;
  std::optional<TlsClientOptions> tls_;
  int http_status_ = 0;
  std::string error_;
  std::string protocol_;
  std::string buffer_;
};

}  // namespace hubcast::testing
