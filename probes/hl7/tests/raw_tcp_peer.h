// A scripted TCP peer on 127.0.0.1 for the cases no real HL7 engine can be
// made to produce: garbage, broken MLLP framing, closing without an answer.
// One thread; each connection is read until the MLLP end block (or 5 s),
// answered with the scripted bytes (fixed, or computed from what arrived)
// and closed (or held open: `hold`).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace pacs::test {

class RawTcpPeer {
 public:
  using Reply = std::function<std::string(const std::string& received)>;
  explicit RawTcpPeer(std::string reply, bool hold = false)
      : RawTcpPeer([r = std::move(reply)](const std::string&) { return r; }, hold) {}
  explicit RawTcpPeer(Reply reply, bool hold = false) : reply_(std::move(reply)), hold_(hold) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0) {
      throw std::runtime_error("raw peer: bind/listen failed");
    }
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (::pipe2(wake_, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    thread_ = std::thread([this] { loop(); });
  }
  ~RawTcpPeer() {
    char c = 1;
    (void)!::write(wake_[1], &c, 1);
    thread_.join();
    for (int h : held_) ::close(h);
    ::close(fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }
  RawTcpPeer(const RawTcpPeer&) = delete;
  RawTcpPeer& operator=(const RawTcpPeer&) = delete;
  int port() const { return port_; }
  int connections() const { return connections_.load(); }
  // Bytes received on the last connection (the test checks a message arrived).
  size_t last_received_bytes() const { return last_bytes_.load(); }

 private:
  void loop() {
    for (;;) {
      pollfd p[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) continue;
      if (p[1].revents) return;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      ++connections_;
      std::string in;
      char buf[4096];
      while (in.find("\x1c\r") == std::string::npos) {
        pollfd q[2] = {{c, POLLIN, 0}, {wake_[0], POLLIN, 0}};
        if (::poll(q, 2, 5000) <= 0 || q[1].revents) break;
        ssize_t n = ::read(c, buf, sizeof buf);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
      }
      last_bytes_ = in.size();
      const std::string out = reply_(in);
      size_t off = 0;
      while (off < out.size()) {
        ssize_t n = ::send(c, out.data() + off, out.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      if (hold_) {
        held_.push_back(c);
      } else {
        ::close(c);
      }
    }
  }
  Reply reply_;
  bool hold_;
  int fd_ = -1, port_ = 0;
  int wake_[2] = {-1, -1};
  std::thread thread_;
  std::vector<int> held_;
  std::atomic<int> connections_{0};
  std::atomic<size_t> last_bytes_{0};
};

}  // namespace pacs::test
