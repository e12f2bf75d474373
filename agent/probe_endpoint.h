// `GET /probe?target=NAME[&check=CHECK]`: runs a configured target's checks
// now, blackbox style, and answers a fresh exposition. Unknown targets and
// checks are HTTP 400; a failing check is HTTP 200 with probe_success 0.
// Each check's deadline is min(X-Prometheus-Scrape-Timeout-Seconds - 0.5 s,
// the check's timeout). Runs go through run_probe(), like scheduled ones.
//
// `&debug=true` (blackbox_exporter's spelling) answers plain text instead:
// "Metrics that would have been returned:", the exposition, then each
// check's transcript (probes/probe.h: Transcript), step by step with times.
//
// Runs happen on a small pool of its own (never on the io thread), with a
// cap on requests in flight (503 beyond it). stop() answers every request
// still queued with 503 and waits for running ones (bounded by deadlines).
//
// Thread-safety: handle() from the io thread; stop() from any thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "agent/config.h"
#include "agent/http_server.h"
#include "agent/probe_coalescer.h"
#include "agent/worker_pool.h"
#include "probes/log.h"

namespace pacs {

class ProbeEndpoint {
 public:
  static constexpr int kWorkers = 4;
  static constexpr int kMaxInflight = 16;
  static constexpr double kScrapeTimeoutOffset = 0.5;  // seconds kept for the HTTP round trip, as blackbox does

  ProbeEndpoint(Logger& log, std::function<std::shared_ptr<const Config>()> config);
  ~ProbeEndpoint() { stop(); }
  ProbeEndpoint(const ProbeEndpoint&) = delete;
  ProbeEndpoint& operator=(const ProbeEndpoint&) = delete;

  void handle(const HttpRequest& req, Respond respond);
  void stop();

 private:
  Logger& log_;
  std::function<std::shared_ptr<const Config>()> config_;
  std::atomic<int> inflight_{0};
  std::atomic<bool> stopping_{false};
  ProbeCoalescer coalescer_;  // identical concurrent requests share one run
  WorkerPool pool_{kWorkers};
};

}  // namespace pacs
