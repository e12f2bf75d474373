// The running agent: owns the current Config, the ResultStore, the
// Scheduler, the on-demand probe pool and the HTTP routes.
//
// Thread-safety: handle() is called on the io_context thread; reload() may
// be called from any thread (SIGHUP handler, POST /-/reload) and is
// serialised internally; a bad config never replaces a running one.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "agent/config.h"
#include "agent/http_server.h"
#include "agent/result_store.h"
#include "agent/scheduler.h"
#include "agent/worker_pool.h"

namespace pacs {

struct AgentOptions {
  std::optional<std::string> config_file;  // nullopt: embedded default
  std::vector<std::string> listen_addresses;  // from flags; empty: [web] listen_address
};

class Agent {
 public:
  Agent(Logger& log, AgentOptions opts, std::shared_ptr<const Config> initial);
  ~Agent();

  void start();  // starts the scheduler with the initial config
  // Re-reads the config file; on success swaps the probe set. Returns the
  // error message, or an empty string on success.
  std::string reload();
  void stop();   // stops scheduling; in-flight probes end by their deadline

  void handle(const HttpRequest& req, Respond respond);
  std::vector<std::string> listen_addresses() const;
  std::shared_ptr<const Config> config() const;

  // Exposition text of /metrics (exposed for tests and benchmarks).
  std::string metrics_text() const;

 private:
  void handle_probe(const HttpRequest& req, Respond respond);
  std::string status_page() const;
  void count_request(const std::string& handler, int code);

  Logger& log_;
  AgentOptions opts_;
  mutable std::mutex config_mu_;
  std::shared_ptr<const Config> config_;
  std::mutex reload_mu_;

  ResultStore store_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>& reload_ok_;
  prometheus::Family<prometheus::Gauge>& reload_ts_;
  prometheus::Family<prometheus::Counter>& http_requests_;
  std::unique_ptr<Scheduler> scheduler_;
  WorkerPool on_demand_;
  std::atomic<int> on_demand_inflight_{0};
  std::atomic<bool> started_{false};
  std::atomic<bool> on_demand_stop_{false};
};

}  // namespace pacs
