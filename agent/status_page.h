// The status page (`GET /`): a function of a snapshot, so it is easy to
// test and never touches live state while rendering. Plain HTML, no
// JavaScript. Shows configured names, reasons and messages only (no PHI).
#pragma once

#include <string>
#include <vector>

#include "agent/result_store.h"

namespace pacs {

struct StatusSnapshot {
  std::string version;
  std::string config_source;
  size_t targets = 0;
  std::vector<ProbeStatus> probes;  // config order
};

std::string render_status_page(const StatusSnapshot& s);

std::string html_escape(std::string_view s);

}  // namespace pacs
