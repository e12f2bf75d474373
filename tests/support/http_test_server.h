// A tiny HTTP/1.1 server on 127.0.0.1 for the HTTP queue probe tests: the
// test decides every answer (status, body, raw bytes, or no answer at all).
// One thread; every connection is answered and closed, except "hang"
// answers, whose connections stay open (silent) until the server stops, and
// "abort" answers, which reset or close the connection mid-exchange.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <functional>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace pacs::test {

struct LoopbackRequest {
  std::string method, target;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // by Content-Length (no chunked bodies)
};

struct LoopbackReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  bool hang = false;  // accept, read the request, never answer
  // Instead of an answer: send `raw` as is (maybe nothing), then close the
  // connection, with a TCP RST when `reset` (SO_LINGER 0), else a plain FIN.
  bool abort = false;
  bool reset = false;
  std::string raw = {};
  static LoopbackReply json(std::string b, int status = 200) { return {status, std::move(b), "application/json"}; }
  static LoopbackReply silent() { return {0, {}, {}, true}; }
  static LoopbackReply reset_after(std::string raw = {}) { return {0, {}, {}, false, true, true, std::move(raw)}; }
  static LoopbackReply close_after(std::string raw = {}) { return {0, {}, {}, false, true, false, std::move(raw)}; }
};

class LoopbackHttpServer {
 public:
  using Handler = std::function<LoopbackReply(const LoopbackRequest&)>;

  explicit LoopbackHttpServer(Handler h) : handler_(std::move(h)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 16) != 0) {
      throw std::runtime_error("loopback server: bind/listen failed");
    }
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (::pipe2(wake_, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    thread_ = std::thread([this] { loop(); });
  }
  ~LoopbackHttpServer() {
    stop_ = true;
    char c = 1;
    (void)!::write(wake_[1], &c, 1);
    thread_.join();
    for (int fd : held_) ::close(fd);
    ::close(listen_fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }
  LoopbackHttpServer(const LoopbackHttpServer&) = delete;
  LoopbackHttpServer& operator=(const LoopbackHttpServer&) = delete;

  int port() const { return port_; }
  std::string url(const std::string& path = "") const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  std::vector<LoopbackRequest> requests() const {
    std::lock_guard lk(mu_);
    return requests_;
  }

 private:
  void loop() {
    while (!stop_) {
      pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) continue;
      if (p[1].revents) break;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      serve(fd);
    }
  }

  void serve(int fd) {
    std::string in;
    char buf[4096];
    while (in.find("\r\n\r\n") == std::string::npos) {
      pollfd p[2] = {{fd, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (::poll(p, 2, 5000) <= 0 || p[1].revents) {
        ::close(fd);
        return;
      }
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fd);
        return;
      }
      in.append(buf, static_cast<size_t>(n));
    }
    LoopbackRequest req;
    auto line_end = in.find("\r\n");
    auto line = in.substr(0, line_end);
    auto sp1 = line.find(' '), sp2 = line.rfind(' ');
    req.method = line.substr(0, sp1);
    req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t pos = line_end + 2;
    while (true) {
      auto e = in.find("\r\n", pos);
      if (e == std::string::npos || e == pos) break;
      auto h = in.substr(pos, e - pos);
      auto colon = h.find(':');
      if (colon != std::string::npos) {
        std::string name = h.substr(0, colon);
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        auto v = h.substr(colon + 1);
        while (!v.empty() && v.front() == ' ') v.erase(0, 1);
        req.headers[name] = v;
      }
      pos = e + 2;
    }
    if (auto cl = req.headers.find("content-length"); cl != req.headers.end()) {
      const size_t want = std::stoul(cl->second);
      std::string body = in.substr(in.find("\r\n\r\n") + 4);
      while (body.size() < want) {
        pollfd p[2] = {{fd, POLLIN, 0}, {wake_[0], POLLIN, 0}};
        if (::poll(p, 2, 5000) <= 0 || p[1].revents) break;
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        body.append(buf, static_cast<size_t>(n));
      }
      req.body = std::move(body);
    }
    {
      std::lock_guard lk(mu_);
      requests_.push_back(req);
    }
    LoopbackReply rep = handler_(req);
    if (rep.hang) {
      held_.push_back(fd);
      return;
    }
    if (rep.abort) {
      send_all(fd, rep.raw);
      if (rep.reset) {
        linger l{1, 0};  // close() sends RST instead of FIN
        ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      }
      ::close(fd);
      return;
    }
    std::string out = "HTTP/1.1 " + std::to_string(rep.status) + " X\r\nContent-Type: " + rep.content_type +
                      "\r\nContent-Length: " + std::to_string(rep.body.size()) + "\r\nConnection: close\r\n\r\n" +
                      rep.body;
    send_all(fd, out);
    ::shutdown(fd, SHUT_WR);
    ::close(fd);
  }

  static void send_all(int fd, const std::string& out) {
    size_t off = 0;
    while (off < out.size()) {
      ssize_t n = ::send(fd, out.data() + off, out.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
  }

  Handler handler_;
  int listen_fd_ = -1, port_ = 0;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<int> held_;
  mutable std::mutex mu_;
  std::vector<LoopbackRequest> requests_;
};

}  // namespace pacs::test
