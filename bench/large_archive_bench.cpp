// One agent, a large archive: the pacs-agent binary with 1,000 DICOM echo
// targets at 30 s against local peers (storescp --fork, several AE titles),
// 50 of them pointing at a peer that accepts TCP and never answers (each of
// their runs hangs until its deadline). Printed beside the targets, measured
// in one run (never asserted):
//
//   phase A (Prometheus-like: one gzip scrape every 15 s)
//     agent CPU (% of one core), RSS (max), scheduling lag p99 of all runs
//     (from pacs_agent_scheduling_lag_seconds over the phase)
//   phase B (scrapes every 500 ms, gzip and plain alternating)
//     /metrics latency p50/p99 (every scrape sees results that changed)
//
//   bench_large_archive [targets=1000] [hanging=50] [phase_a_seconds=120] [workers=64]
#include <poll.h>

#include <atomic>
#include <cmath>
#include <map>
#include <regex>

#include "bench/bench_util.h"

namespace {

// Accepts TCP connections and never answers (keeps them open until stopped).
class SilentPeer {
 public:
  SilentPeer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 256);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) conns_.push_back(c);
        // Close the ones the agent gave up on long ago (bounded fd use).
        if (conns_.size() > 400) {
          for (size_t i = 0; i < 200; ++i) ::close(conns_[i]);
          conns_.erase(conns_.begin(), conns_.begin() + 200);
        }
      }
    });
  }
  ~SilentPeer() {
    stop_ = true;
    thread_.join();
    for (int c : conns_) ::close(c);
    ::close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<int> conns_;
  std::thread thread_;
};

// Cumulative buckets of pacs_agent_scheduling_lag_seconds: le -> count.
std::map<double, double> lag_buckets(const std::string& text) {
  std::map<double, double> out;
  std::regex re("pacs_agent_scheduling_lag_seconds_bucket\\{le=\"([^\"]+)\"\\} ([0-9.e+]+)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
    std::string le = (*it)[1].str();
    out[le == "+Inf" ? INFINITY : std::stod(le)] = std::stod((*it)[2].str());
  }
  return out;
}

// histogram_quantile as Prometheus computes it (linear within the bucket).
double quantile(double q, const std::map<double, double>& b) {
  if (b.empty()) return NAN;
  double total = b.rbegin()->second;
  if (total <= 0) return NAN;
  double rank = q * total, prev_le = 0, prev_count = 0;
  for (const auto& [le, count] : b) {
    if (count >= rank) {
      if (std::isinf(le)) return prev_le;
      return prev_le + (le - prev_le) * (rank - prev_count) / std::max(1e-12, count - prev_count);
    }
    prev_le = le;
    prev_count = count;
  }
  return prev_le;
}

int count_value(const std::string& text, const std::string& prefix, double value) {
  int n = 0;
  size_t pos = 0;
  while ((pos = text.find("\n" + prefix, pos)) != std::string::npos) {
    pos += 1;
    auto sp = text.find(' ', text.find('}', pos));
    if (std::stod(text.substr(sp + 1)) == value) ++n;
  }
  return n;
}

const char* verdict(bool ok) { return ok ? "met" : "MISSED"; }

// Other work on the machine stretches every wall-clock figure: print it.
std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

}  // namespace

int main(int argc, char** argv) {
  int targets = argc > 1 ? std::atoi(argv[1]) : 1000;
  int hanging = argc > 2 ? std::atoi(argv[2]) : 50;
  int phase_a = argc > 3 ? std::atoi(argv[3]) : 120;
  int workers = argc > 4 ? std::atoi(argv[4]) : 64;
  if (std::system("command -v storescp >/dev/null 2>&1") != 0) {
    std::printf("skipped: storescp (dcmtk) not installed\n");
    return 0;
  }
  setenv("TCP_NODELAY", "1", 1);  // storescp: else Nagle, not the code, dominates
  const int n_scp = 4;
  std::vector<std::unique_ptr<bench::Child>> scps;
  std::vector<int> scp_ports;
  for (int i = 0; i < n_scp; ++i) {
    scp_ports.push_back(bench::free_port());
    scps.push_back(std::make_unique<bench::Child>(
        std::vector<std::string>{"storescp", "--fork", std::to_string(scp_ports.back())}));
  }
  SilentPeer silent;
  std::string cfg_path = "/tmp/pacs-bench-archive-" + std::to_string(::getpid()) + ".toml";
  {
    std::ofstream cfg(cfg_path);
    cfg << "[agent]\ninterval = \"30s\"\ntimeout = \"10s\"\ncalling_ae_title = \"PACS_AGENT\"\n"
        << "max_concurrent_probes = " << workers << "\n";
    for (int i = 0; i < targets; ++i) {
      bool hang = i % (targets / std::max(1, hanging)) == 0 && i / (targets / std::max(1, hanging)) < hanging;
      char name[32], aet[17];
      std::snprintf(name, sizeof name, "%s-%04d", hang ? "hung" : "ae", i);
      std::snprintf(aet, sizeof aet, "AE%04d", i);
      cfg << "\n[[dicom]]\nname = \"" << name << "\"\nhost = \"127.0.0.1\"\nport = "
          << (hang ? silent.port() : scp_ports[static_cast<size_t>(i % n_scp)]) << "\ncalled_ae_title = \"" << aet
          << "\"\nchecks = [\"echo\"]\n";
    }
  }
  for (int p : scp_ports) {
    if (!bench::wait_for_port(p, std::chrono::seconds(10))) {
      std::printf("storescp did not start\n");
      return 1;
    }
  }
  int port = bench::free_port();
  bench::Child agent({PACS_AGENT_PATH, "--config.file=" + cfg_path,
                      "--web.listen-address=127.0.0.1:" + std::to_string(port), "--log.level=warn"},
                     "/tmp/pacs-bench-archive-agent.log");
  if (!bench::wait_for_port(port, std::chrono::seconds(20))) {
    std::printf("agent did not start; see /tmp/pacs-bench-archive-agent.log\n");
    return 1;
  }
  std::printf("large archive: %d echo targets at 30 s (%d hanging until their 10 s deadline), %d workers, "
              "%d storescp --fork, %u CPUs\n",
              targets, hanging, workers, n_scp, std::thread::hardware_concurrency());

  std::string load_start = loadavg();
  // Warm-up: every target has finished a run.
  auto t_start = bench::Clock::now();
  std::string text;
  int green = 0, red = 0;
  while (bench::Clock::now() - t_start < std::chrono::seconds(90)) {
    text = bench::http_get(port, "/metrics").body;
    green = count_value(text, "pacs_probe_success{", 1);
    red = count_value(text, "pacs_probe_success{", 0);
    if (green + red >= targets) break;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  std::printf("warm-up: %.0f s until all had a result (%d green, %d failing)\n",
              std::chrono::duration<double>(bench::Clock::now() - t_start).count(), green, red);

  // Phase A: as Prometheus would scrape it.
  auto lag0 = lag_buckets(bench::http_get(port, "/metrics").body);
  double cpu0 = bench::cpu_seconds(agent.pid());
  auto t0 = bench::Clock::now();
  double rss_max = 0;
  std::vector<double> scrape_a;
  auto next_scrape = t0;
  while (bench::Clock::now() - t0 < std::chrono::seconds(phase_a)) {
    if (bench::Clock::now() >= next_scrape) {
      auto r = bench::http_get(port, "/metrics", "Accept-Encoding: gzip\r\n");
      scrape_a.push_back(r.seconds * 1000);
      next_scrape += std::chrono::seconds(15);
    }
    rss_max = std::max(rss_max, bench::status_mib(agent.pid(), "VmRSS"));
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  double wall = std::chrono::duration<double>(bench::Clock::now() - t0).count();
  double cpu = (bench::cpu_seconds(agent.pid()) - cpu0) / wall * 100;
  text = bench::http_get(port, "/metrics").body;
  auto lag1 = lag_buckets(text);
  std::map<double, double> lag;
  for (const auto& [le, n] : lag1) lag[le] = n - lag0[le];
  double runs = lag.empty() ? 0 : lag.rbegin()->second;
  double within_100ms = lag.count(0.1) && runs > 0 ? lag[0.1] / runs : NAN;
  double p99 = quantile(0.99, lag);
  green = count_value(text, "pacs_probe_success{", 1);
  red = count_value(text, "pacs_probe_success{", 0);
  size_t series = 0;
  for (char c : text) series += c == '\n';

  std::string load_a = loadavg();

  // Phase B: /metrics latency (gzip as Prometheus asks, and plain), and the
  // agent CPU each scrape costs (phase B's CPU minus phase A's rate).
  std::vector<double> lat_gz, lat_plain;
  size_t gz_bytes = 0, plain_bytes = 0;
  double cpu_b0 = bench::cpu_seconds(agent.pid());
  auto tb = bench::Clock::now();
  const int scrapes_b = 60;
  for (int i = 0; i < scrapes_b; ++i) {
    auto r = bench::http_get(port, "/metrics", i % 2 ? "" : "Accept-Encoding: gzip\r\n");
    (i % 2 ? lat_plain : lat_gz).push_back(r.seconds * 1000);
    (i % 2 ? plain_bytes : gz_bytes) = r.body.size();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  double wall_b = std::chrono::duration<double>(bench::Clock::now() - tb).count();
  double cpu_per_scrape =
      ((bench::cpu_seconds(agent.pid()) - cpu_b0) - cpu / 100 * wall_b) / scrapes_b * 1000;
  std::string load_b = loadavg();

  std::printf("phase A: %.0f s, %.0f runs started, %d green, %d failing, ~%zu lines (%zu bytes plain, %zu gzip)\n",
              wall, runs, green, red, series, plain_bytes, gz_bytes);
  std::printf("machine load (1/5/15 min) at the start: %s, after phase A: %s, after phase B: %s\n",
              load_start.c_str(), load_a.c_str(), load_b.c_str());
  std::printf("%-44s %-14s %-10s %s\n", "figure", "measured", "target", "");
  std::printf("%-44s %-14.2f %-10s %s\n", "agent CPU, % of one core (phase A)", cpu, "<= 5", verdict(cpu <= 5));
  std::printf("%-44s %-14.1f %-10s %s\n", "agent RSS, MiB (max over phase A)", rss_max, "<= 64", verdict(rss_max <= 64));
  double p50 = bench::percentile(lat_gz, 0.5);
  std::printf("%-44s %-14.2f %-10s %s\n", "/metrics p50 ms, gzip (phase B)", p50, "<= 25", verdict(p50 <= 25));
  std::printf("%-44s %-14.2f %-10s\n", "/metrics p99 ms, gzip (phase B)", bench::percentile(lat_gz, 0.99), "");
  std::printf("%-44s %-14.2f %-10s %s\n", "/metrics p50 ms, plain (phase B)", bench::percentile(lat_plain, 0.5),
              "<= 25", verdict(bench::percentile(lat_plain, 0.5) <= 25));
  std::printf("%-44s %-14.2f %-10s\n", "/metrics p50 ms, gzip, every 15 s (phase A)", bench::percentile(scrape_a, 0.5),
              "");
  std::printf("%-44s %-14.2f %-10s\n", "agent CPU ms per scrape (phase B, mean)", cpu_per_scrape, "");
  std::printf("%-44s %-14.1f %-10s %s\n", "scheduling lag p99 ms, all runs (phase A)", p99 * 1000, "<= 100",
              verdict(p99 <= 0.1));
  std::printf("%-44s %-14.3f %-10s\n", "runs started within 100 ms of due, %", within_100ms * 100, ">= 99");
  std::printf("(lag p99: interpolated in the histogram's buckets like histogram_quantile; it includes the hanging\n"
              " targets' own runs, so it bounds the others' lag from above)\n");
  std::remove(cfg_path.c_str());
  return 0;
}
