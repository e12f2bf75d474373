// Scrape cost, printed (never asserted).
//
// 1. In process, against the number of probes: the old path (Collect +
//    prometheus-cpp TextSerializer + gzip of everything at every scrape)
//    beside the store's cached rendering after one result changed, after
//    every result changed (join the rendered lines, deflate the chunks whose
//    text changed) and with nothing changed (copy, deflate the live tail).
// 2. Over HTTP, side by side in one run: the pacs-agent binary watching 100
//    AEs (C-ECHO against a local storescp) and prometheus-node-exporter on
//    the same machine, both hammered by `wrk -c8` with and without
//    Accept-Encoding: gzip. The figure that matters is the ratio of
//    requests per second (target: the agent serves >= 20x node_exporter).
//
//   bench_scrape [wrk_seconds=10]
#include <sys/resource.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <regex>
#include <sstream>
#include <vector>

#include <prometheus/text_serializer.h>

#include "agent/exposition.h"
#include "agent/http_server.h"
#include "agent/result_store.h"
#include "bench/bench_util.h"

using namespace pacs;

namespace {

// CPU time of this thread, in ms: what a scrape costs, whatever else the
// machine is doing (wall time on a shared machine mostly measures the others).
double thread_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}
struct Stopwatch {
  double t0 = thread_cpu_ms();
  double ms() const { return thread_cpu_ms() - t0; }
};

// A store with n probes holding results shaped like C-ECHO ones (4 phase
// gauges and a DIMSE status, the DICOM reasons) and half failing.
std::vector<ProbeSpec> fill(ResultStore& store, int n) {
  std::vector<ProbeSpec> specs;
  for (int i = 0; i < n; ++i) {
    ProbeSpec s;
    s.probe = "dicom_echo";
    s.target = "ae-" + std::to_string(i);
    s.interval = std::chrono::seconds(15);
    s.timeout = std::chrono::seconds(5);
    s.reasons = {Reason::dns_failure,          Reason::connection_refused,  Reason::connect_timeout,
                 Reason::association_rejected, Reason::association_aborted, Reason::association_timeout,
                 Reason::dimse_timeout,        Reason::dimse_status,        Reason::protocol_error};
    s.fingerprint = "x";
    specs.push_back(s);
  }
  store.set_probes(specs);
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < specs.size(); ++i) {
      ProbeResult r = i % 2 ? ProbeResult::ok() : ProbeResult::fail(Reason::association_timeout, "t");
      for (const char* phase : {"connect", "associate", "dimse", "release"}) {
        r.add("pacs_dicom_phase_duration_seconds", "Time spent in each phase.", 0.0001 * static_cast<double>(i + 1),
              {{"phase", phase}});
      }
      r.add("pacs_dicom_dimse_status", "DIMSE status.", 0);
      store.record(specs[i], {r, 0.0012 * static_cast<double>(round + 1), std::chrono::system_clock::now()});
    }
  }
  return specs;
}

void in_process() {
  std::printf("1. /metrics body in process (p50 of repeated scrapes, CPU milliseconds of the scraping thread)\n");
  std::printf("   old: Collect + TextSerializer + gzip of everything (the path before the cache);\n"
              "   one/all: one result / every probe's result changed since the last scrape (a 15 s scrape\n"
              "   of 1,000 AEs at 30 s sees about half of them changed); warm: nothing changed\n");
  std::printf("%-7s %-8s %-10s %-8s %-8s %-9s %-10s %-10s %-10s %-9s\n", "probes", "series", "bytes", "gz_old",
              "gz_new", "old", "one_gzip", "all_plain", "all_gzip", "warm_gzip");
  const std::string live =
      "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
      "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\n";
  auto gzip_scrape = [&](const ResultStore& store) {
    auto part = store.deflated();
    auto tail = exposition::deflate_part(live);
    return exposition::gzip_join({part.get(), &tail});
  };
  for (int n : {10, 100, 1000, 5000}) {
    ResultStore store;
    auto specs = fill(store, n);
    int reps = n >= 5000 ? 8 : n >= 1000 ? 20 : 100;
    std::vector<double> old_ms, one_gz, all_plain, all_gz, warm_gz;
    size_t bytes = 0, series = 0, gz_old = 0, gz_new = 0;
    auto record_all = [&](int rep) {
      for (size_t i = 0; i < specs.size(); ++i) {
        ProbeResult r = ProbeResult::ok();
        for (const char* phase : {"connect", "associate", "dimse", "release"}) {
          r.add("pacs_dicom_phase_duration_seconds", "Time spent in each phase.", 0.0001 * static_cast<double>(rep + 1),
                {{"phase", phase}});
        }
        r.add("pacs_dicom_dimse_status", "DIMSE status.", 0);
        store.record(specs[i], {r, 0.001 * static_cast<double>(rep % 7 + 1), std::chrono::system_clock::now()});
      }
    };
    for (int rep = 0; rep < reps; ++rep) {
      Stopwatch t0;
      std::ostringstream os;
      prometheus::TextSerializer().Serialize(os, store.Collect());
      gz_old = gzip_compress(os.str()).size();
      old_ms.push_back(t0.ms());

      // One result changes (with 1,000 AEs one does every few ms), then a scrape.
      ProbeResult r = ProbeResult::ok();
      store.record(specs[static_cast<size_t>(rep) % specs.size()], {r, 0.001, std::chrono::system_clock::now()});
      t0 = Stopwatch();
      gz_new = gzip_scrape(store).size();
      one_gz.push_back(t0.ms());

      // Every probe has a new result, then a plain scrape; again, then a gzip one.
      record_all(rep);
      t0 = Stopwatch();
      std::string plain = *store.text() + live;
      all_plain.push_back(t0.ms());
      bytes = plain.size();
      series = static_cast<size_t>(std::count(plain.begin(), plain.end(), '\n'));
      record_all(rep + 1);
      t0 = Stopwatch();
      gzip_scrape(store);
      all_gz.push_back(t0.ms());

      t0 = Stopwatch();
      gzip_scrape(store);  // unchanged: cached
      warm_gz.push_back(t0.ms());
    }
    std::printf("%-7d %-8zu %-10zu %-8zu %-8zu %-9.2f %-10.2f %-10.2f %-10.2f %-9.3f\n", n, series, bytes, gz_old,
                gz_new, bench::percentile(old_ms, 0.5), bench::percentile(one_gz, 0.5),
                bench::percentile(all_plain, 0.5), bench::percentile(all_gz, 0.5), bench::percentile(warm_gz, 0.5));
  }
}

struct WrkResult {
  double rps = 0;
  std::string note;
};

WrkResult wrk(int port, const std::string& path, bool gzip, int seconds) {
  std::string out_file = "/tmp/pacs-bench-wrk-" + std::to_string(::getpid()) + ".txt";
  std::vector<std::string> args = {"wrk", "-c8", "-t2", "-d" + std::to_string(seconds) + "s", "--latency"};
  if (gzip) {
    args.push_back("-H");
    args.push_back("Accept-Encoding: gzip");
  }
  args.push_back("http://127.0.0.1:" + std::to_string(port) + path);
  {
    bench::Child w(args, out_file);
    while (w.running()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::ifstream in(out_file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::remove(out_file.c_str());
  WrkResult r;
  std::smatch m;
  if (std::regex_search(text, m, std::regex("Requests/sec:\\s+([0-9.]+)"))) r.rps = std::stod(m[1].str());
  if (std::regex_search(text, m, std::regex("Non-2xx or 3xx responses: (\\d+)"))) r.note += " non-2xx=" + m[1].str();
  if (std::regex_search(text, m, std::regex("Socket errors: ([^\\n]+)"))) r.note += " socket errors: " + m[1].str();
  if (r.rps == 0) r.note += " wrk said: " + text.substr(0, 200);
  return r;
}

size_t count_series(const std::string& text) {
  size_t n = 0;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && line[0] != '#') ++n;
  return n;
}

bool have(const char* program) {
  std::string cmd = std::string("command -v ") + program + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

void over_http(int seconds) {
  std::ifstream la("/proc/loadavg");
  std::string l1, l5, l15;
  la >> l1 >> l5 >> l15;
  std::printf("\n2. /metrics over HTTP, side by side: wrk -c8 -t2 -d%ds on 127.0.0.1 (%u CPUs, load %s %s %s)\n",
              seconds, std::thread::hardware_concurrency(), l1.c_str(), l5.c_str(), l15.c_str());
  for (const char* p : {"wrk", "prometheus-node-exporter", "storescp"}) {
    if (!have(p)) {
      std::printf("   skipped: %s not installed (scripts/bench installs wrk and prometheus-node-exporter)\n", p);
      return;
    }
  }
  const int n_aes = 100;
  setenv("TCP_NODELAY", "1", 1);
  int scp_port = bench::free_port();
  bench::Child scp({"storescp", "--fork", std::to_string(scp_port)});
  int ne_port = bench::free_port();
  bench::Child ne({"prometheus-node-exporter", "--web.listen-address=127.0.0.1:" + std::to_string(ne_port)},
                  "/tmp/pacs-bench-node-exporter.log");
  std::string cfg_path = "/tmp/pacs-bench-scrape-" + std::to_string(::getpid()) + ".toml";
  {
    std::ofstream cfg(cfg_path);
    cfg << "[agent]\ninterval = \"15s\"\ntimeout = \"5s\"\ncalling_ae_title = \"PACS_AGENT\"\n";
    for (int i = 0; i < n_aes; ++i) {
      cfg << "\n[[dicom]]\nname = \"ae-" << i << "\"\nhost = \"127.0.0.1\"\nport = " << scp_port
          << "\ncalled_ae_title = \"AE" << i << "\"\nchecks = [\"echo\"]\n";
    }
  }
  int agent_port = bench::free_port();
  bench::Child agent({PACS_AGENT_PATH, "--config.file=" + cfg_path,
                      "--web.listen-address=127.0.0.1:" + std::to_string(agent_port), "--log.level=warn"},
                     "/tmp/pacs-bench-scrape-agent.log");
  if (!bench::wait_for_port(scp_port, std::chrono::seconds(10)) ||
      !bench::wait_for_port(ne_port, std::chrono::seconds(10)) ||
      !bench::wait_for_port(agent_port, std::chrono::seconds(10))) {
    std::printf("   skipped: a process did not start (see /tmp/pacs-bench-*.log)\n");
    return;
  }
  // Every AE has a result (first runs are spread over 5 s).
  std::string text;
  auto end = bench::Clock::now() + std::chrono::seconds(30);
  int green = 0;
  while (bench::Clock::now() < end) {
    text = bench::http_get(agent_port, "/metrics").body;
    green = 0;
    for (int i = 0; i < n_aes; ++i) {
      if (bench::metric(text, "pacs_probe_success{probe=\"dicom_echo\",target=\"ae-" + std::to_string(i) + "\"}") == 1)
        ++green;
    }
    if (green == n_aes) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  auto ne_plain = bench::http_get(ne_port, "/metrics");
  auto ne_gz = bench::http_get(ne_port, "/metrics", "Accept-Encoding: gzip\r\n");
  auto ag_plain = bench::http_get(agent_port, "/metrics");
  auto ag_gz = bench::http_get(agent_port, "/metrics", "Accept-Encoding: gzip\r\n");
  std::printf("   agent: %d AEs (%d green), %zu series, %zu bytes plain, %zu gzip\n", n_aes, green,
              count_series(ag_plain.body), ag_plain.body.size(), ag_gz.body.size());
  std::printf("   node_exporter: %zu series, %zu bytes plain, %zu gzip\n", count_series(ne_plain.body),
              ne_plain.body.size(), ne_gz.body.size());
  std::printf("   %-8s %-18s %-18s %-10s %s\n", "encoding", "node_exporter r/s", "pacs-agent r/s", "ratio", "target");
  for (bool gz : {false, true}) {
    // Interleaved, so both see the same machine load.
    auto n1 = wrk(ne_port, "/metrics", gz, seconds);
    auto a1 = wrk(agent_port, "/metrics", gz, seconds);
    double ratio = n1.rps > 0 ? a1.rps / n1.rps : 0;
    std::printf("   %-8s %-18.0f %-18.0f %-10.1f >= 20x %s%s%s\n", gz ? "gzip" : "plain", n1.rps, a1.rps, ratio,
                ratio >= 20 ? "(met)" : "(MISSED)", n1.note.c_str(), a1.note.c_str());
  }
  std::remove(cfg_path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  int seconds = argc > 1 ? std::atoi(argv[1]) : 10;
  in_process();
  over_http(seconds);
  return 0;
}
