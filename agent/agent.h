// The running agent: owns the current Config, the ResultStore, the
// TargetHistory, the Scheduler, the /probe endpoint, the reload lane and the HTTP routes.
//
// Thread-safety: handle() is called on the io_context thread. Reloads run
// on their own lane (one thread, joined by stop()), never on the io thread
// and never behind probe work; a bad config never replaces a running one.
// stop() may be called from any thread except the reload lane and the probe
// workers; it answers every pending reload and /probe request, and joins
// every thread the agent started.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "agent/config.h"
#include "agent/http_server.h"
#include "agent/probe_endpoint.h"
#include "agent/result_store.h"
#include "agent/routes.h"
#include "agent/scheduler.h"
#include "agent/target_history.h"

namespace pacs {

// What became of a requested reload.
struct ReloadOutcome {
  enum class Status { reloaded, failed, shutting_down } status = Status::reloaded;
  std::string error;  // when failed
};

struct AgentOptions {
  std::optional<std::string> config_file;  // nullopt: embedded default
  std::vector<std::string> listen_addresses;  // from flags; empty: [web] listen_address
  // --web.enable-lifecycle: POST /-/reload works (else 403; SIGHUP always works).
  bool enable_lifecycle = false;
};

class Agent {
 public:
  Agent(Logger& log, AgentOptions opts, std::shared_ptr<const Config> initial);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  void start();  // starts the scheduler with the initial config
  // Queues a reload on the reload lane; `done` (optional) learns the outcome.
  // Requests queued while one runs are served by the next reload, together.
  void request_reload(std::function<void(const ReloadOutcome&)> done = {});
  // Re-reads the config file now, on the calling thread; returns the error
  // message or "" (tests; the HTTP endpoint and SIGHUP use the lane).
  std::string reload();
  void stop();  // stops reloads, scheduling and /probe; in-flight probes end by their deadline

  void handle(const HttpRequest& req, Respond respond);
  std::vector<std::string> listen_addresses() const;
  std::shared_ptr<const Config> config() const;

  // Exposition text of /metrics (exposed for tests and benchmarks).
  std::string metrics_text() const;
  // The registry /metrics serves besides the probes' (the HTTP server's
  // counters go here too).
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  // Called by a reload with the new [web] settings before anything else
  // changes; an exception fails the reload (the HTTP server's TLS files and
  // users are swapped this way). Set before start().
  void on_web_reload(std::function<void(const WebSettings&)> fn) { web_reload_ = std::move(fn); }

 private:
  void reload_loop();
  // The part of /metrics built at every scrape: the agent's own registry,
  // probes running, scheduling lag, process metrics.
  std::string live_metrics_text() const;

  Logger& log_;
  AgentOptions opts_;
  mutable std::mutex config_mu_;
  std::shared_ptr<const Config> config_;
  std::mutex reload_mu_;  // one reload at a time

  ResultStore store_;
  TargetHistory history_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>& reload_ok_;
  prometheus::Family<prometheus::Gauge>& reload_ts_;
  prometheus::Family<prometheus::Counter>& http_requests_;
  std::unique_ptr<Scheduler> scheduler_;
  ProbeEndpoint probe_endpoint_;
  Router router_;
  std::atomic<bool> started_{false};
  std::function<void(const WebSettings&)> web_reload_;

  // The reload lane.
  std::mutex lane_mu_;
  std::condition_variable lane_cv_;
  std::vector<std::function<void(const ReloadOutcome&)>> lane_waiting_;
  bool lane_requested_ = false;
  bool lane_stop_ = false;
  std::thread lane_;
};

}  // namespace pacs
