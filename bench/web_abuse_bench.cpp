// bench_web_abuse: the built agent's HTTP surface under attack, measured
// beside the same scrapes without the attack, in one run.
//
// The agent runs with one basic-auth user (bcrypt cost 12) and a filesystem
// target. A "Prometheus" on 127.0.0.1 GETs /metrics and then /-/healthy with
// the right password every 100 ms (a fresh connection each time, which is
// what an abusive client competes with) in five phases of --seconds each:
//
//   anchor        nothing else
//   wrong-pw      an attacker tries 20 distinct wrong passwords a second
//                 (open loop: one connection each, whatever the answers), so
//                 every try is a bcrypt the failure cache cannot save; from
//                 four addresses 127.0.0.2..5 in turn, so that the per-client
//                 connection cap alone does not hold it back and the bcrypt
//                 queue's bound is reached too
//   idle x10      300 connections that never send a byte from 127.0.0.2..11
//                 (30 each: under the per-client cap of 32, over the total
//                 cap of 256) plus a slowloris client on 127.0.0.30 sending
//                 one header byte every 3 s; both reopen what the server
//                 closes (the idle ones once a second)
//   idle x1       the same from the single address 127.0.0.2
//   anchor after  nothing else again (brackets load changes on a shared
//                 machine)
//
// Printed: scrape latency p50/p90/p99/max per phase, scrapes that failed (no
// 200 within 10 s, Prometheus' default scrape timeout) or took over 1 s, what
// the attackers got, one bcrypt's cost here, the machine load, and
// pacs_agent_http_connections_rejected_total by reason at the end, and the
// agent's CPU per phase (what the attack costs it). Nothing
// passes or fails on timings.
//
//   bench_web_abuse [--seconds=30] [--agent=PATH]
#include <crypt.h>
#include <poll.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include "bench/bench_util.h"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr unsigned long kCost = 12;
constexpr auto kScrapeTimeout = 10s;

std::string base64(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
    out += {t[v >> 18], t[v >> 12 & 63], t[v >> 6 & 63], t[v & 63]};
  }
  if (i + 1 == in.size()) {
    unsigned v = (unsigned char)in[i] << 16;
    out += {t[v >> 18], t[v >> 12 & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8;
    out += {t[v >> 18], t[v >> 12 & 63], t[v >> 6 & 63], '='};
  }
  return out;
}

std::string basic(const std::string& user, const std::string& pass) {
  return "Authorization: Basic " + base64(user + ":" + pass) + "\r\n";
}

std::string bcrypt(const std::string& password, double* seconds = nullptr) {
  char salt[64];
  if (!crypt_gensalt_rn("$2b$", kCost, nullptr, 0, salt, sizeof salt)) return {};
  crypt_data d{};
  auto t0 = bench::Clock::now();
  const char* h = crypt_r(password.c_str(), salt, &d);
  if (seconds) *seconds = std::chrono::duration<double>(bench::Clock::now() - t0).count();
  return h && h[0] == '$' ? h : "";
}

// A TCP connection to 127.0.0.1:port from `source` (a loopback address);
// -1 when it fails. Blocking connect bounded by 2 s.
int connect_from(const std::string& source, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  ::inet_pton(AF_INET, source.c_str(), &src.sin_addr);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  dst.sin_port = htons(static_cast<uint16_t>(port));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// True when the server has closed `fd` (EOF or reset pending), without blocking.
bool closed_by_peer(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
  return n <= 0 || (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

struct Reply {
  int status = 0;  // 0: refused, reset, or no answer in time
  double ms = 0;   // connect .. last byte
  std::string body;
};

// GET over a fresh HTTP/1.0 connection (no chunked coding), read to EOF,
// with an overall deadline.
Reply get(int port, const std::string& path, const std::string& headers,
          std::chrono::milliseconds timeout = kScrapeTimeout, const std::string& source = "127.0.0.1") {
  Reply r;
  auto t0 = bench::Clock::now(), deadline = t0 + timeout;
  int fd = connect_from(source, port);
  if (fd < 0) return r;
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n" + headers + "\r\n";
  std::string raw;
  bool sent = ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size());
  bool eof = false;
  while (sent && !eof) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - bench::Clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      eof = n == 0;
      break;
    }
    raw.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  r.ms = std::chrono::duration<double, std::milli>(bench::Clock::now() - t0).count();
  auto end = raw.find("\r\n\r\n");
  if (!eof || end == std::string::npos || raw.size() < 12) return r;
  r.status = std::atoi(raw.c_str() + 9);
  r.body = raw.substr(end + 4);
  return r;
}

// Runs `body` on a thread until stop() (which joins it).
class Worker {
 public:
  explicit Worker(std::function<void(const std::atomic<bool>&)> body)
      : thread_([this, body = std::move(body)] { body(stop_); }) {}
  ~Worker() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// 20 distinct wrong passwords a second for the configured user, one
// connection each, from 127.0.0.2..5 in turn, open loop: a try is sent on
// schedule whether or not earlier ones were answered.
struct WrongPasswords {
  // closed: the server closed the connection without an answer (a cap);
  // timed_out: no answer within 10 s; pending: still waiting at the end.
  int sent = 0, denied = 0, busy = 0, other = 0, closed = 0, timed_out = 0, pending = 0;

  void run(int port, const std::atomic<bool>& stop) {
    struct Try {
      int fd;
      bench::Clock::time_point start;
      std::string raw;
    };
    std::vector<Try> open;
    auto next = bench::Clock::now();
    auto finish = [&](Try& t, int& unanswered) {
      ::close(t.fd);
      if (t.raw.size() < 12) {
        ++unanswered;
        return;
      }
      int status = std::atoi(t.raw.c_str() + 9);
      (status == 401 ? denied : status == 503 ? busy : other) += 1;
    };
    while (!stop) {
      auto now = bench::Clock::now();
      if (now >= next) {
        next += 50ms;
        ++sent;
        int fd = connect_from("127.0.0." + std::to_string(2 + sent % 4), port);
        std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n" +
                          basic("prometheus", "guess-" + std::to_string(sent)) + "\r\n";
        if (fd < 0 || ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
          if (fd >= 0) ::close(fd);
          ++closed;
        } else {
          open.push_back({fd, now, {}});
        }
        continue;
      }
      std::vector<pollfd> ps;
      for (auto& t : open) ps.push_back({t.fd, POLLIN, 0});
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - now).count();
      ::poll(ps.data(), ps.size(), static_cast<int>(std::max<long>(1, wait)));
      std::vector<Try> still;
      for (size_t i = 0; i < open.size(); ++i) {
        Try& t = open[i];
        if (ps[i].revents) {
          char buf[4096];
          ssize_t n = ::recv(t.fd, buf, sizeof buf, MSG_DONTWAIT);
          if (n > 0) t.raw.append(buf, static_cast<size_t>(n));
          else if (n == 0 || errno != EAGAIN) {
            finish(t, closed);
            continue;
          }
        }
        if (bench::Clock::now() - t.start > kScrapeTimeout) finish(t, timed_out);
        else still.push_back(std::move(t));
      }
      open.swap(still);
    }
    for (auto& t : open) finish(t, pending);
  }
};

// `n` connections that never send a byte from `sources` (round robin);
// whatever the server closes is reopened once a second.
struct IdleHorde {
  int opened = 0, failed = 0;

  void run(int port, int n, const std::vector<std::string>& sources, const std::atomic<bool>& stop) {
    std::vector<int> fds(static_cast<size_t>(n), -1);
    while (!stop) {
      for (size_t i = 0; i < fds.size() && !stop; ++i) {
        if (fds[i] >= 0 && !closed_by_peer(fds[i])) continue;
        if (fds[i] >= 0) ::close(fds[i]);
        fds[i] = connect_from(sources[i % sources.size()], port);
        (fds[i] >= 0 ? opened : failed) += 1;
      }
      for (int i = 0; i < 10 && !stop; ++i) std::this_thread::sleep_for(100ms);
    }
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
};

// One client trickling a request header, one byte every 3 s, from
// 127.0.0.30; reconnects when the server cuts it off.
struct Slowloris {
  int cut = 0;
  double longest_s = 0;

  void run(int port, const std::atomic<bool>& stop) {
    const std::string header = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ";
    while (!stop) {
      int fd = connect_from("127.0.0.30", port);
      if (fd < 0) {
        std::this_thread::sleep_for(200ms);
        continue;
      }
      auto t0 = bench::Clock::now();
      bool alive = true;
      for (size_t i = 0; alive && !stop; ++i) {
        char c = i < header.size() ? header[i] : 'a';
        if (::send(fd, &c, 1, MSG_NOSIGNAL) != 1) alive = false;
        // Wait 3 s, watching for the server closing the connection.
        for (auto until = bench::Clock::now() + 3s; alive && !stop && bench::Clock::now() < until;) {
          pollfd p{fd, POLLIN | POLLRDHUP, 0};
          if (::poll(&p, 1, 100) > 0) alive = false;
        }
      }
      if (!alive) {
        ++cut;
        longest_s = std::max(longest_s, std::chrono::duration<double>(bench::Clock::now() - t0).count());
      }
      ::close(fd);
    }
  }
};

struct Stats {
  std::vector<double> ms;
  int failed = 0, over_1s = 0;
  void add(const Reply& r) {
    if (r.status != 200) ++failed;
    else ms.push_back(r.ms);
    if (r.status != 200 || r.ms > 1000) ++over_1s;
  }
  int total() const { return static_cast<int>(ms.size()) + failed; }
  double q(double p) const { return ms.empty() ? NAN : bench::percentile(ms, p); }
  double max() const { return ms.empty() ? NAN : *std::max_element(ms.begin(), ms.end()); }
};

struct Phase {
  std::string name;
  Stats metrics, healthy;
  std::string load;
  double cpu_percent = 0;  // the agent's, of one core
  double settle_s = 0;     // after the abuse stopped, until the agent was quiet
};

// "Prometheus": /metrics then /-/healthy every 100 ms for `seconds` (a tick
// that overruns is followed at once by the next, never by a burst).
void scrape(pid_t agent, int port, const std::string& auth, int seconds, Phase& phase) {
  double cpu0 = bench::cpu_seconds(agent);
  auto t0 = bench::Clock::now(), end = t0 + std::chrono::seconds(seconds);
  auto next = bench::Clock::now();
  while (bench::Clock::now() < end) {
    phase.metrics.add(get(port, "/metrics", auth));
    phase.healthy.add(get(port, "/-/healthy", auth));
    next = std::max(next + 100ms, bench::Clock::now());
    std::this_thread::sleep_until(next);
  }
  phase.cpu_percent = (bench::cpu_seconds(agent) - cpu0) * 100 /
                      std::chrono::duration<double>(bench::Clock::now() - t0).count();
}

// Waits (up to 30 s) until the agent uses under 20% of a core over a second:
// bcrypt checks still queued when an attacker stops run on, and would be
// billed to the next phase. Returns the seconds waited.
double settle(pid_t agent) {
  auto t0 = bench::Clock::now();
  while (bench::Clock::now() - t0 < 30s) {
    double c0 = bench::cpu_seconds(agent);
    std::this_thread::sleep_for(1s);
    if (bench::cpu_seconds(agent) - c0 < 0.2) break;
  }
  return std::chrono::duration<double>(bench::Clock::now() - t0).count();
}

std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = 30;
  std::string agent_path = PACS_AGENT_PATH;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--seconds=", 0) == 0) seconds = std::max(1, std::atoi(a.c_str() + 10));
    else if (a.rfind("--agent=", 0) == 0) agent_path = a.substr(8);
    else {
      std::fprintf(stderr, "usage: bench_web_abuse [--seconds=30] [--agent=PATH]\n");
      return 2;
    }
  }
  // Client addresses other than 127.0.0.1 must be bindable (Linux routes
  // all of 127/8 to lo).
  if (int fd = connect_from("127.0.0.2", bench::free_port()); fd >= 0) ::close(fd);

  char tmpl[] = "/tmp/pacs-bench-web-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    std::perror("mkdtemp");
    return 1;
  }
  fs::path dir = tmpl;
  const std::string password = "scrape-" + std::to_string(::getpid());
  double bcrypt_s = 0;
  std::string hash = bcrypt(password, &bcrypt_s);
  if (hash.empty()) {
    std::printf("crypt_r cannot make a $2b$ hash here\n");
    fs::remove_all(dir);
    return 1;
  }
  {
    std::ofstream cfg(dir / "agent.toml");
    cfg << "[web]\n[web.basic_auth_users]\nprometheus = \"" << hash << "\"\n\n"
        << "[[filesystem]]\nname = \"bench-tmp\"\npath = \"" << dir.string() << "\"\n";
  }
  const std::string auth = basic("prometheus", password);
  const int port = bench::free_port();
  const std::string log = (dir / "agent.log").string();
  int status = 0;
  {
    bench::Child agent({agent_path, "--config.file=" + (dir / "agent.toml").string(),
                        "--web.listen-address=127.0.0.1:" + std::to_string(port), "--log.level=warn"},
                       log);
    // Ready when it answers over HTTP (the first authorised request is
    // also the one bcrypt the scrapes' credentials ever cost).
    bool ready = false;
    for (auto until = bench::Clock::now() + 60s; !ready && agent.running() && bench::Clock::now() < until;) {
      ready = get(port, "/-/healthy", auth, 5s).status == 200;
      if (!ready) std::this_thread::sleep_for(100ms);
    }
    if (!ready) {
      std::printf("agent did not answer /-/healthy; its log:\n");
      std::ifstream in(log);
      std::printf("%s\n", std::string(std::istreambuf_iterator<char>(in), {}).c_str());
      status = 1;
    } else {
      std::printf("web abuse: agent with one basic-auth user (bcrypt cost %lu), scraped /metrics + /-/healthy "
                  "every 100 ms, %d s per phase, %u CPUs\n",
                  kCost, seconds, std::thread::hardware_concurrency());
      std::printf("one bcrypt at cost %lu in this process: %.0f ms (the agent verifies on 2 threads)\n", kCost,
                  bcrypt_s * 1000);
      std::vector<Phase> phases(5);
      phases[0].name = "anchor";
      scrape(agent.pid(), port, auth, seconds, phases[0]);
      phases[0].load = loadavg();

      phases[1].name = "wrong-pw 20/s";
      WrongPasswords wp;
      {
        Worker w([&](const std::atomic<bool>& stop) { wp.run(port, stop); });
        scrape(agent.pid(), port, auth, seconds, phases[1]);
      }
      phases[1].load = loadavg();
      phases[1].settle_s = settle(agent.pid());

      std::vector<std::string> ten;
      for (int i = 2; i < 12; ++i) ten.push_back("127.0.0." + std::to_string(i));
      IdleHorde horde10, horde1;
      Slowloris loris10, loris1;
      phases[2].name = "idle x10+loris";
      {
        Worker h([&](const std::atomic<bool>& stop) { horde10.run(port, 300, ten, stop); });
        Worker l([&](const std::atomic<bool>& stop) { loris10.run(port, stop); });
        std::this_thread::sleep_for(1s);  // the horde is in place
        scrape(agent.pid(), port, auth, seconds, phases[2]);
      }
      phases[2].load = loadavg();
      phases[2].settle_s = settle(agent.pid());
      phases[3].name = "idle x1+loris";
      {
        Worker h([&](const std::atomic<bool>& stop) { horde1.run(port, 300, {"127.0.0.2"}, stop); });
        Worker l([&](const std::atomic<bool>& stop) { loris1.run(port, stop); });
        std::this_thread::sleep_for(1s);
        scrape(agent.pid(), port, auth, seconds, phases[3]);
      }
      phases[3].load = loadavg();
      phases[3].settle_s = settle(agent.pid());
      phases[4].name = "anchor after";
      scrape(agent.pid(), port, auth, seconds, phases[4]);
      phases[4].load = loadavg();

      auto row = [&](const char* label, const std::function<std::string(const Phase&)>& cell) {
        std::printf("%-26s", label);
        for (const auto& p : phases) std::printf(" %15s", cell(p).c_str());
        std::printf("\n");
      };
      auto num = [](double v, const char* fmt = "%.1f") {
        char b[32];
        std::snprintf(b, sizeof b, fmt, v);
        return std::string(b);
      };
      std::printf("\n");
      row("phase", [](const Phase& p) { return p.name; });
      for (auto [name, which] : {std::pair{"/metrics", &Phase::metrics}, std::pair{"/-/healthy", &Phase::healthy}}) {
        std::string n = name;
        row((n + " scrapes").c_str(), [&](const Phase& p) { return std::to_string((p.*which).total()); });
        row((n + " p50 ms").c_str(), [&](const Phase& p) { return num((p.*which).q(0.5)); });
        row((n + " p90 ms").c_str(), [&](const Phase& p) { return num((p.*which).q(0.9)); });
        row((n + " p99 ms").c_str(), [&](const Phase& p) { return num((p.*which).q(0.99)); });
        row((n + " max ms").c_str(), [&](const Phase& p) { return num((p.*which).max()); });
        row((n + " failed").c_str(), [&](const Phase& p) { return std::to_string((p.*which).failed); });
        row((n + " failed or >1s").c_str(), [&](const Phase& p) { return std::to_string((p.*which).over_1s); });
      }
      row("agent CPU % of one core", [&](const Phase& p) { return num(p.cpu_percent); });
      row("s until quiet after", [&](const Phase& p) { return num(p.settle_s); });
      row("load 1/5/15 min at end", [](const Phase& p) { return p.load; });
      std::printf("\nwrong passwords: %d sent, %d answered 401, %d answered 503 (bcrypt queue full), %d other, "
                  "%d closed unanswered (connection caps), %d unanswered after 10 s, %d pending at the end\n",
                  wp.sent, wp.denied, wp.busy, wp.other, wp.closed, wp.timed_out, wp.pending);
      std::printf("idle x10: %d connections opened (%d failed to connect); slowloris cut off %d times, the longest "
                  "after %.1f s\n",
                  horde10.opened, horde10.failed, loris10.cut, loris10.longest_s);
      std::printf("idle x1:  %d connections opened (%d failed to connect); slowloris cut off %d times, the longest "
                  "after %.1f s\n",
                  horde1.opened, horde1.failed, loris1.cut, loris1.longest_s);
      std::printf("targets: /metrics p99 < 100 ms under wrong passwords (measured %s ms); every scrape answered "
                  "within 1 s beside idle connections and slowloris (failed or >1 s: %d and %d)\n",
                  num(phases[1].metrics.q(0.99)).c_str(), phases[2].metrics.over_1s + phases[2].healthy.over_1s,
                  phases[3].metrics.over_1s + phases[3].healthy.over_1s);
      std::string text = get(port, "/metrics", auth).body;
      std::printf("\nfrom /metrics at the end:\n");
      std::istringstream lines(text);
      for (std::string line; std::getline(lines, line);) {
        if (line.rfind("pacs_agent_http_connections", 0) == 0) std::printf("  %s\n", line.c_str());
      }
    }
    agent.stop();
  }
  fs::remove_all(dir);
  return status;
}
