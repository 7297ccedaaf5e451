// A gtest fixture for integration tests that run `hubcast serve` children: each test gets a
// temporary directory, StartServer spawns a server on port 0 (reading the port back from its
// ports file), and TearDown stops every child by pid, prints their logs when the test failed
// and removes the directory when it passed. Header-only; used from the test thread only.
#pragma once

#include <gtest/gtest.h>

#include "tests/integration/jwt_util.h"
#include "tests/integration/process_util.h"
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#ifndef HUBCAST_BINARY_PATH
#define HUBCAST_BINARY_PATH "hubcast"
#endif

namespace hubcast::testing {

class ServerFixture : public ::testing::Test {
 protected:
  static constexpr char kAccessKey[] = "hubcast-front-test-access-key-0123456789abcdef";

  void SetUp() override {
    const char* tmp_root = std::getenv("TMPDIR");
    std::string dir_template =
        std::string(tmp_root != nullptr && *tmp_root != '\0' ? tmp_root : "/tmp") +
        "/hubcast-front-XXXXXX";
    ASSERT_NE(mkdtemp(dir_template.data()), nullptr) << "mkdtemp: " << std::strerror(errno);
    dir_ = dir_template;
  }

  void TearDown() override {
    for (auto& server : servers_) server->Stop(std::chrono::seconds(10));
    std::error_code ec;
    if (HasFailure()) {
      for (auto& server : servers_) server->DumpLog(std::cerr);
      std::cerr << "work directory kept: " << dir_ << std::endl;
    } else {
      std::filesystem::remove_all(dir_, ec);
    }
  }

  static std::string Binary() {
    const char* value = std::getenv("HUBCAST_BINARY");
    return value != nullptr && *value != '\0' ? value : HUBCAST_BINARY_PATH;
  }

  // Starts a server (its own data dir) and returns its port; nullopt (with a failure) when
  // it does not come up.
  std::optional<int> StartServer(const std::vector<std::string>& extra = {}) {
    const std::string name = "hubcast-" + std::to_string(servers_.size() + 1);
    const std::filesystem::path ports_file = dir_ / (name + ".port");
    SpawnOptions options;
    options.binary = Binary();
    options.args = {"serve",    "--port",        "0",         "--ports-file",
                    ports_file, "--data-dir",    dir_ / name, "--access-key",
                    kAccessKey, "--event-loops", "2",         "--http-threads",
                    "4"};
    options.args.insert(options.args.end(), extra.begin(), extra.end());
    options.log_path = dir_ / (name + ".log");
    std::string error;
    std::unique_ptr<ChildProcess> server = ChildProcess::Spawn(options, &error);
    if (!server) {
      ADD_FAILURE() << error;
      return std::nullopt;
    }
    ChildProcess* raw = server.get();
    servers_.push_back(std::move(server));
    std::optional<int> port = WaitForPortFile(ports_file, std::chrono::seconds(30), raw);
    if (!port) {
      ADD_FAILURE() << "hubcast did not start listening ("
                    << (raw->Running() ? "still running" : raw->exit_status()->ToString())
                    << "): " << raw->ReadLog();
    }
    return port;
  }

  ChildProcess* server(size_t i = 0) { return servers_.at(i).get(); }

  // "Authorization: Bearer ..." for a REST call to `target` at `base` (e.g.
  // "http://127.0.0.1:1234"), signed the way the official SDK signs it.
  static std::string Bearer(const std::string& base, const std::string& target) {
    return "Bearer " + MintJwt(kAccessKey, base + target);
  }

  std::filesystem::path dir_;
  std::vector<std::unique_ptr<ChildProcess>> servers_;
};

}  // namespace hubcast::testing
