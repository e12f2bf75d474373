// The figures an admin looks for beside a check's status ("free 12.3 GiB
// (45.6%)", "items 12", "connect 0.4 ms", "certificate in 200 days"), made
// from the samples of its last run. Which samples, and under which label, is
// the kind's business (Kind::figures in probes/kind.h); how a value reads
// follows the metric name's unit suffix. The agent knows no kind: a kind
// without figures gets one figure per sample, named after its metric.
//
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "probes/kind.h"

namespace pacs {

struct FigureText {
  std::string metric;  // the sample name it came from
  std::string label;   // may be empty (the value says it all)
  std::string value;   // formatted; empty for a flag that is set
};

// `kind` may be null (unknown kind: the fallback applies).
std::vector<FigureText> make_figures(const Kind* kind, std::string_view check, const std::vector<Sample>& samples,
                                     std::chrono::system_clock::time_point now);

// One value of `metric`, in the unit its name implies.
std::string format_metric_value(std::string_view metric, double v, std::chrono::system_clock::time_point now);

// "12.3 GiB", "512 B".
std::string format_bytes(double v);
// "0.41 ms", "12 ms", "3.2 s", "15 min", "5.2 h", "3.1 days".
std::string format_duration(double seconds);

}  // namespace pacs
