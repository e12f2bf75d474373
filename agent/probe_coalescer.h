// Concurrent /probe requests that ask for the same thing share one run.
//
// /probe is open to anyone who can reach the agent (like blackbox's): without
// this, a handful of clients could keep many C-FINDs running against the same
// PACS at once. With it, a request arriving while an identical one (same
// query parameters and scrape timeout) is running waits for that run and gets
// its answer; at most one run per target and check set is in flight.
//
// Thread-safety: every member may be called from any thread.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/http_server.h"

namespace pacs {

class ProbeCoalescer {
 public:
  // The key of a /probe request: every query parameter and the scraper's
  // timeout header.
  static std::string key(const HttpRequest& req);

  // When no run for `key` is in flight: returns the Respond the new run must
  // answer through (it answers every request that joined meanwhile too).
  // Otherwise `respond` joins the run in flight and nullopt is returned.
  std::optional<Respond> join(const std::string& key, Respond respond);

  std::size_t runs_in_flight() const;
  std::size_t joined_total() const;  // requests served by another request's run

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::vector<Respond>> waiting_;
  std::size_t joined_ = 0;
};

}  // namespace pacs
