// bench_transcript: what tracing every scheduled run costs. Each probe runs
// through run_probe() (the scheduler's path) without a transcript (the
// anchor) and with one (as the scheduler does: a fresh Transcript per run,
// then the text a page would render), in alternating batches; prints the
// median per run of both and the difference. Figures, not pass/fail.
//
//   bench_transcript [runs=2000]
//
// Probes: filesystem (statvfs under its watchdog: the cheapest real probe,
// so the worst case for the relative cost), a spool folder of 20 files, and
// an http_json query against a loopback HTTP server.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/probe_runner.h"
#include "probes/filesystem/filesystem.h"
#include "probes/lib/http/http_client.h"
#include "probes/queue/queue.h"
#include "tests/support/http_test_server.h"

namespace fs = std::filesystem;
using Us = std::chrono::duration<double, std::micro>;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Row {
  std::string name;
  double plain_us, traced_us;
  size_t steps;
};

Row measure(const std::string& name, pacs::Probe& probe, int runs, pacs::Logger& log) {
  pacs::ProbeSpec spec;
  spec.probe = name;
  spec.target = "bench";
  std::vector<double> plain, traced;
  size_t steps = 0;
  const int batch = 50;
  for (int done = 0; done < runs; done += batch) {
    for (int mode = 0; mode < 2; ++mode) {
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < batch; ++i) {
        auto start = pacs::Clock::now();
        if (mode == 0) {
          auto out = pacs::run_probe(probe, spec, start + std::chrono::seconds(5), nullptr, log);
          if (!out.result.success) std::fprintf(stderr, "%s failed: %s\n", name.c_str(), out.result.message.c_str());
        } else {
          auto t = std::make_shared<pacs::Transcript>(start);
          auto out = pacs::run_probe(probe, spec, start + std::chrono::seconds(5), nullptr, log, t.get());
          steps = t->steps().size();
          std::string text = t->text();  // what a page renders (only when someone looks)
          if (text.empty()) std::abort();
        }
      }
      double per_run = Us(std::chrono::steady_clock::now() - t0).count() / batch;
      (mode == 0 ? plain : traced).push_back(per_run);
    }
  }
  return {name, median(plain), median(traced), steps};
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::max(100, std::atoi(argv[1])) : 2000;
  pacs::Logger log(pacs::LogLevel::error, [](std::string_view) {});
  pacs::http::global_init();

  fs::path dir = fs::temp_directory_path() / ("pacs-bench-transcript-" + std::to_string(::getpid()));
  fs::create_directories(dir / "spool");
  for (int i = 0; i < 20; ++i) std::ofstream(dir / "spool" / ("f" + std::to_string(i) + ".dcm")) << "x";

  pacs::test::LoopbackHttpServer srv(
      [](const pacs::test::LoopbackRequest&) { return pacs::test::LoopbackReply::json(R"({"queue":{"depth":7}})"); });

  pacs::filesystem::FilesystemProbe fsp({dir.string()}, pacs::filesystem::StatWatchdog::process_default());
  pacs::queue::SpoolOptions so;
  so.path = (dir / "spool").string();
  pacs::queue::SpoolDirectoryProbe spool(so);
  pacs::queue::HttpJsonProbe json(srv.url("/status?x=1"), {{"depth", "/queue/depth"}}, pacs::http::Settings{});

  std::vector<Row> rows;
  rows.push_back(measure("filesystem", fsp, runs, log));
  rows.push_back(measure("queue_directory (20 files)", spool, runs, log));
  rows.push_back(measure("queue_http_json (loopback)", json, std::max(100, runs / 4), log));

  std::printf("%-28s %6s %14s %14s %12s %8s\n", "probe", "steps", "untraced us", "traced us", "cost us", "cost %");
  for (const auto& r : rows) {
    std::printf("%-28s %6zu %14.2f %14.2f %12.2f %7.1f%%\n", r.name.c_str(), r.steps, r.plain_us, r.traced_us,
                r.traced_us - r.plain_us, (r.traced_us - r.plain_us) / r.plain_us * 100);
  }
  std::printf("(median of batches of 50 runs; untraced = the anchor, the same probe without a transcript)\n");
  fs::remove_all(dir);
  pacs::http::global_shutdown();
  return 0;
}
