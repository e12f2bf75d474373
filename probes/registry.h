// The explicit map from config section to the code that turns one table of
// that section into probe specs. Adding a probe kind = one folder under
// probes/, one line in registry.cpp (no static self-registration).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "probes/config_table.h"
#include "probes/probe.h"

namespace pacs {

class Logger;

// Settings from [agent] that probes may need.
struct AgentSettings {
  std::string calling_ae_title = "PACS_AGENT";
  Duration default_interval = std::chrono::seconds(30);
  Duration default_timeout = std::chrono::seconds(10);
  int max_concurrent_probes = 8;
};

// Keys every target table has; the loader reads and validates them before
// calling the section parser (which must not read them again).
struct TargetCommon {
  std::string name;
  Duration interval{};
  Duration timeout{};
};

// Turns one [[section]] table into one spec per check. Reads its own keys
// from `table` (the loader reports any it did not read as unknown) and
// throws ConfigError (table.fail(...)) on invalid values.
using SectionParser = std::vector<ProbeSpec> (*)(const ConfigTable& table, const TargetCommon& common,
                                                 const AgentSettings& agent);

struct SectionEntry {
  std::string_view name;  // "dicom", "filesystem", "queue"
  SectionParser parse;
};

const std::vector<SectionEntry>& config_sections();

// Fills the fields every spec shares; `fingerprint` is the table's canonical text.
ProbeSpec make_spec(std::string probe, const TargetCommon& common, const ConfigTable& table,
                    std::vector<Reason> reasons, std::function<std::unique_ptr<Probe>()> make);

// Process-wide library set-up (DCMTK, libcurl) that must run once in main()
// before any thread starts, and the matching tear-down after all threads end.
void initialize_probe_libraries(Logger& log);
void shutdown_probe_libraries();

}  // namespace pacs
