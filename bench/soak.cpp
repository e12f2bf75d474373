// soak_agent: the built agent with 200 probes at ten times the usual rate
// (3 s intervals instead of 30 s) against local peers, some healthy, some
// failing, some hanging, scraped every second like Prometheus, for a
// configurable time. Prints the agent's RSS, open descriptors and threads
// at the start (after a warm-up) and at the end, and their drift. Nothing
// passes or fails: the figures are for a person to read.
//
//   soak_agent [--minutes=30] [--warmup-seconds=120] [--agent=PATH]
//
// Peers, all on 127.0.0.1: storescp (C-ECHO answers), a closed port (refused),
// a TCP peer that accepts and never speaks (DICOM and HTTP hangs), an HTTP
// peer answering JSON, one answering 500; spool folders (one missing).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

int listen_loopback(int& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 256) != 0) {
    std::perror("bind/listen");
    std::exit(1);
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

int free_port() {
  int port;
  int fd = listen_loopback(port);
  ::close(fd);
  return port;
}

// A peer on its own thread. mode: "json" (200 + JSON), "error" (500),
// "silent" (accept, read, never answer; held for 20 s then closed).
class Peer {
 public:
  explicit Peer(std::string mode) : mode_(std::move(mode)) {
    fd_ = listen_loopback(port_);
    thread_ = std::thread([this] { loop(); });
  }
  ~Peer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
    for (auto& [c, t] : held_) ::close(c);
  }
  int port() const { return port_; }

 private:
  void loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) {
        expire();
        continue;
      }
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      if (mode_ == "silent") {
        held_.push_back({c, std::chrono::steady_clock::now()});
        expire();
        continue;
      }
      char buf[4096];
      pollfd cp{c, POLLIN, 0};
      if (::poll(&cp, 1, 2000) > 0) (void)!::read(c, buf, sizeof buf);
      std::string body = mode_ == "json" ? "{\"depth\": 3}" : "{}";
      std::string status = mode_ == "json" ? "200 OK" : "500 Internal Server Error";
      std::string out = "HTTP/1.1 " + status + "\r\nContent-Type: application/json\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      (void)!::send(c, out.data(), out.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }
  void expire() {
    auto now = std::chrono::steady_clock::now();
    for (size_t i = 0; i < held_.size();) {
      if (now - held_[i].second > 20s) {
        ::close(held_[i].first);
        held_.erase(held_.begin() + static_cast<long>(i));
      } else {
        ++i;
      }
    }
  }
  std::string mode_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::pair<int, std::chrono::steady_clock::time_point>> held_;
};

pid_t spawn(const std::vector<std::string>& argv, const fs::path& log) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::_Exit(127);
  }
  return pid;
}

std::string http_get(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    char buf[65536];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

struct Sample {
  double rss_mib = 0;
  int fds = 0, threads = 0;
  double cpu_seconds = 0;
};

Sample sample(pid_t pid) {
  Sample s;
  std::ifstream st("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(st, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_mib = std::atof(line.c_str() + 6) / 1024.0;
    if (line.rfind("Threads:", 0) == 0) s.threads = std::atoi(line.c_str() + 8);
  }
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    ++s.fds;
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto close_paren = all.rfind(')');
  if (close_paren != std::string::npos) {
    std::istringstream rest(all.substr(close_paren + 2));
    std::string f;
    std::vector<std::string> fields;
    while (rest >> f) fields.push_back(f);
    if (fields.size() > 13) {
      s.cpu_seconds = (std::atof(fields[11].c_str()) + std::atof(fields[12].c_str())) / ::sysconf(_SC_CLK_TCK);
    }
  }
  return s;
}

double pct(double a, double b) { return a == 0 ? 0 : 100.0 * (b - a) / a; }

// Open descriptors and threads move with the probe runs in flight at the
// instant of a sample; the median of a few samples a second apart is the
// figure, with the range beside it.
struct Window {
  std::vector<Sample> s;
  template <class F>
  double median(F f) const {
    std::vector<double> v;
    for (const auto& x : s) v.push_back(f(x));
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
  }
  template <class F>
  std::pair<double, double> range(F f) const {
    double lo = 1e300, hi = -1e300;
    for (const auto& x : s) lo = std::min(lo, f(x)), hi = std::max(hi, f(x));
    return {lo, hi};
  }
};

}  // namespace

int main(int argc, char** argv) {
  double minutes = 30, warmup = 120;
  std::string agent = fs::path(argv[0]).parent_path().parent_path() / "pacs-agent";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--minutes=", 0) == 0) minutes = std::atof(a.c_str() + 10);
    else if (a.rfind("--warmup-seconds=", 0) == 0) warmup = std::atof(a.c_str() + 17);
    else if (a.rfind("--agent=", 0) == 0) agent = a.substr(8);
    else {
      std::fprintf(stderr, "usage: soak_agent [--minutes=30] [--warmup-seconds=120] [--agent=PATH]\n");
      return 2;
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  auto dir = fs::temp_directory_path() / ("pacs-soak-" + std::to_string(::getpid()));
  fs::create_directories(dir / "spool");
  for (int i = 0; i < 200; ++i) std::ofstream(dir / "spool" / ("f" + std::to_string(i) + ".dcm")) << "x";

  Peer json("json"), error("error"), silent("silent");
  int scp_port = free_port(), refused_port = free_port();
  pid_t scp = spawn({"storescp", "--aetitle", "SOAK_SCP", std::to_string(scp_port)}, dir / "storescp.log");

  // 200 probes, 3 s interval (ten times the default 30 s).
  std::ostringstream c;
  c << "[agent]\ninterval = \"3s\"\ntimeout = \"1s\"\nmax_concurrent_probes = 16\ncalling_ae_title = \"SOAK\"\n";
  int n = 0;
  auto add = [&](int count, const std::string& body) {
    for (int i = 0; i < count; ++i) c << "\n" << body << "name = \"t" << n++ << "\"\n";
  };
  add(30, "[[filesystem]]\npath = \"/\"\n");
  add(40, "[[queue]]\ntype = \"directory\"\npath = \"" + (dir / "spool").string() + "\"\n");
  add(20, "[[queue]]\ntype = \"directory\"\npath = \"" + (dir / "missing").string() + "\"\n");
  auto http = [&](int port) {
    return "[[queue]]\ntype = \"http_json\"\nurl = \"http://127.0.0.1:" + std::to_string(port) +
           "/q?token=x\"\nvalues = [{ name = \"depth\", pointer = \"/depth\" }]\n";
  };
  add(30, http(json.port()));
  add(20, http(error.port()));
  add(20, http(silent.port()));
  auto dicom = [&](int port, const std::string& aet) {
    return "[[dicom]]\nhost = \"127.0.0.1\"\nport = " + std::to_string(port) + "\ncalled_ae_title = \"" + aet +
           "\"\nchecks = [\"echo\"]\n";
  };
  add(25, dicom(scp_port, "SOAK_SCP"));
  add(10, dicom(refused_port, "NOBODY"));
  add(5, dicom(silent.port(), "HUNG"));
  std::ofstream(dir / "agent.toml") << c.str();

  int port = free_port();
  pid_t pid = spawn({agent, "--config.file=" + (dir / "agent.toml").string(),
                     "--web.listen-address=127.0.0.1:" + std::to_string(port)},
                    dir / "agent.log");
  for (int i = 0; i < 300 && http_get(port, "/-/ready").find(" 200 ") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
  }
  std::printf("soak: %d probes at 3 s intervals (10x), scraped every 1 s, %.0f min after a %.0f s warm-up; agent pid %d\n",
              n, minutes, warmup, pid);
  std::printf("%8s %10s %6s %8s %10s %10s\n", "t (s)", "RSS (MiB)", "fds", "threads", "CPU (s)", "scrape (B)");
  auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  Sample first = sample(pid), last{};
  Window start, end;
  const double total = warmup + minutes * 60;
  double next_print = 0;
  size_t scrape_bytes = 0;
  long scrapes = 0, failed_scrapes = 0;
  while (elapsed() < total) {
    auto body = http_get(port, "/metrics");
    ++scrapes;
    if (body.find(" 200 ") == std::string::npos) ++failed_scrapes;
    scrape_bytes = body.size();
    if (scrapes % 30 == 0) http_get(port, "/probe?target=t" + std::to_string(scrapes / 30 % n));
    if (elapsed() >= warmup && start.s.size() < 15) start.s.push_back(sample(pid));
    if (elapsed() >= total - 16) end.s.push_back(sample(pid));
    if (elapsed() >= next_print) {
      last = sample(pid);
      std::printf("%8.0f %10.1f %6d %8d %10.1f %10zu\n", elapsed(), last.rss_mib, last.fds, last.threads, last.cpu_seconds,
                  scrape_bytes);
      std::fflush(stdout);
      next_print += 60;
    }
    std::this_thread::sleep_for(1s);
  }
  Sample last_cpu = sample(pid);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::kill(scp, SIGTERM);
  ::waitpid(scp, nullptr, 0);
  double run_cpu = last_cpu.cpu_seconds - start.median([](const Sample& x) { return x.cpu_seconds; });
  std::printf("\nsoak figures: median of ~15 samples 1 s apart after the warm-up (start) and at the end; [range]\n");
  auto row = [&](const char* name, double f, auto get) {
    double a = start.median(get), b = end.median(get);
    auto ra = start.range(get), rb = end.range(get);
    std::printf("  %-8s first %7.1f  start %7.1f [%.0f-%.0f]  end %7.1f [%.0f-%.0f]  drift %+6.1f %%\n", name, f, a,
                ra.first, ra.second, b, rb.first, rb.second, pct(a, b));
  };
  row("RSS MiB", first.rss_mib, [](const Sample& x) { return x.rss_mib; });
  row("fds", first.fds, [](const Sample& x) { return static_cast<double>(x.fds); });
  row("threads", first.threads, [](const Sample& x) { return static_cast<double>(x.threads); });
  std::printf("  CPU %.1f s over %.0f s measured (%.1f %% of one core); scrapes %ld, failed %ld; exit %s\n", run_cpu,
              minutes * 60, 100 * run_cpu / (minutes * 60), scrapes, failed_scrapes,
              WIFEXITED(status) ? std::to_string(WEXITSTATUS(status)).c_str() : "by signal");
  std::printf("  agent log: %s\n", (dir / "agent.log").c_str());
  return 0;
}
