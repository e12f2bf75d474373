// What a probe kind hands the agent: one descriptor (`Kind`) per folder
// probes/<kind>/, listed in probes/registry.cpp. The agent knows kinds only
// through this descriptor: it never includes a kind's headers.
//
// A kind is a module, like a blackbox_exporter prober or a Telegraf plugin:
// its folder owns its config parsing, checks, reasons, process-wide library
// set-up, README (Config, Metrics, Reasons sections), sample.toml and tests.
// docs/architecture.md ("Adding a probe kind") walks through one.
//
// Thread-safety: a Kind is immutable; `parse` and `agent_keys` run on the
// thread that loads the config; `init`/`shutdown` run once in main() while
// no other thread exists.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "probes/config_table.h"
#include "probes/probe.h"

namespace pacs {

class Logger;

// Keys every target table has; the loader reads and validates them before
// calling the kind's parser (which must not read them again).
struct TargetCommon {
  std::string name;
  Duration interval{};
  Duration timeout{};
};

// Turns one [[<kind>]] table into one spec per check. Reads its own keys
// from `table` (the loader reports any it did not read as unknown) and
// throws ConfigError (table.fail(...)) on invalid values. `agent` is the
// [agent] table (empty when the file has none): a kind reads the [agent]
// keys it owns from there (e.g. dicom's calling_ae_title).
using SectionParser = std::vector<ProbeSpec> (*)(const ConfigTable& table, const TargetCommon& common,
                                                 const ConfigTable& agent);

// One check a kind offers.
struct CheckInfo {
  std::string_view check;       // as written in `checks = [...]` and `/probe?check=`
  std::string_view probe;       // the `probe` label of its series
  std::vector<Reason> reasons;  // every reason it can produce (`internal` is implied)
};

// A figure an admin looks for on the status page ("free 12.3 GiB (45.6%)",
// "items 12", "oldest 3 min"), read from a check's samples. Data only: the
// agent formats it. The unit follows the metric name's suffix (Prometheus
// base units): `_timestamp_seconds` as days from now, `_seconds` as a
// duration, `_bytes` in KiB/MiB/GiB, anything else as a plain number. A kind
// without figures gets every sample it returned, named after its metric.
struct Figure {
  std::string_view label;   // shown before the value: "free", "items", "oldest"
  std::string_view metric;  // the sample's name; samples differing only in labels are summed
  // Optional: also show metric / share_of as a percentage; the figure is left
  // out when share_of is 0 (e.g. no fixed inode table).
  std::string_view share_of = {};
  // Optional: one value per value of this label ("phase" -> "connect 0.4 ms,
  // associate 2.1 ms"); zero values are left out, all zero shows "0".
  std::string_view split_by = {};
  std::string_view check = {};  // optional: only for this check; empty = every check
  bool flag = false;            // a 0/1 state: shows the label alone when 1, nothing when 0
};

struct Kind {
  std::string_view name;     // [[name]] in the config, probes/<name>/ in the tree
  std::string_view summary;  // one line: what it watches
  std::vector<CheckInfo> checks;
  SectionParser parse = nullptr;
  // Validates the [agent] keys this kind owns, so they are accepted (and
  // checked) even when no target of the kind is configured. Optional.
  void (*agent_keys)(const ConfigTable& agent) = nullptr;
  // Process-wide library set-up, once in main() before any thread starts;
  // throws std::runtime_error when the kind cannot work at all. Optional.
  void (*init)(Logger& log) = nullptr;
  void (*shutdown)() = nullptr;  // after every thread has ended. Optional.
  // Lines for --version, e.g. "dcmtk 3.6.7". Optional.
  std::vector<std::string> (*versions)() = nullptr;
  // What the status page shows for a check beside its status. Optional.
  std::vector<Figure> figures = {};

  const CheckInfo* find_check(std::string_view check) const;
};

// A spec for `check` of `kind`, with the fields every spec shares
// (`fingerprint` = the table's canonical text). `reasons` defaults to the
// check's full list; pass a subset when this target cannot produce some
// (e.g. no tls_failure without TLS).
ProbeSpec make_spec(const Kind& kind, std::string_view check, const TargetCommon& common, const ConfigTable& table,
                    std::function<std::unique_ptr<Probe>()> make);
ProbeSpec make_spec(const Kind& kind, std::string_view check, const TargetCommon& common, const ConfigTable& table,
                    std::vector<Reason> reasons, std::function<std::unique_ptr<Probe>()> make);

}  // namespace pacs
