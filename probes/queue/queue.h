// Entry points of the queue probe kind used by probes/registry.cpp.
#pragma once

#include <vector>

#include "probes/registry.h"

namespace pacs::queue {

// Parses one [[queue]] table into one ProbeSpec per check.
std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon& common,
                                    const AgentSettings& agent);

// Once in main() before threads: curl_global_init.
void global_init(Logger& log);
void global_shutdown();

}  // namespace pacs::queue
