// Clients for tests of servers on loopback: readiness as a real HTTP answer
// (never a TCP connect: the agent's socket accepts connections from
// listen() on, before it answers anything), and raw connections from other
// loopback addresses (127.0.0.0/8 is all local; each address is another
// client to the server).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/support/support.h"

namespace pacs::test {

// Polls GET `path` on 127.0.0.1:port until it answers `status`.
inline bool wait_for_http(int port, const std::string& path = "/-/ready", int status = 200,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (http_request(port, "GET", path, {}, {}, std::chrono::seconds(2)).status == status) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// A TCP connection to 127.0.0.1:port from the loopback address `from`, or -1.
inline int connect_from(const std::string& from, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  ::inet_pton(AF_INET, from.c_str(), &src.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
    ::close(fd);
    return -1;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace pacs::test
