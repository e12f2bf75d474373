// Standard process_* metrics (as every Prometheus client library exports)
// read from /proc/self. Thread-safety: stateless, safe from any thread.
#pragma once

#include <vector>

#include <prometheus/metric_family.h>

namespace pacs {
std::vector<prometheus::MetricFamily> collect_process_metrics();
}
