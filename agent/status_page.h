// The status page (`GET /`) and the page of one target (`GET
// /target?name=NAME`): functions of a snapshot, so they are easy to test and
// never touch live state while rendering. Plain HTML, no JavaScript, one
// column of cards on a phone. They show configured names, reasons, messages,
// figures and transcripts only (no PHI: see probes/probe.h).
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "agent/figures.h"
#include "agent/result_store.h"
#include "agent/target_history.h"

namespace pacs {

using FigureMap = std::map<std::pair<std::string, std::string>, std::vector<FigureText>>;  // (probe, target)

struct StatusSnapshot {
  std::string version;
  std::string config_source;
  size_t targets = 0;
  std::vector<ProbeStatus> probes;  // config order
  FigureMap figures;                // from each probe's last run
};

std::string render_status_page(const StatusSnapshot& s);

struct TargetSnapshot {
  std::string version;
  std::string name;
  std::vector<ProbeStatus> probes;     // the target's checks, config order
  std::vector<ProbeHistory> history;   // the same checks
  FigureMap figures;
  std::chrono::system_clock::time_point now;
};

std::string render_target_page(const TargetSnapshot& s);

// The figures of every probe's last run (Kind::figures of each probe's kind).
FigureMap figures_of(const std::map<std::pair<std::string, std::string>, std::vector<Sample>>& samples,
                     const std::vector<ProbeStatus>& probes, std::chrono::system_clock::time_point now);

std::string html_escape(std::string_view s);
// Percent-encodes a query value (RFC 3986 unreserved characters kept).
std::string url_escape(std::string_view s);

}  // namespace pacs
