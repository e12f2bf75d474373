// Entry points of the filesystem probe kind used by probes/registry.cpp.
#pragma once

#include <vector>

#include "probes/registry.h"

namespace pacs::filesystem {

// Parses one [[filesystem]] table into one ProbeSpec per check.
std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon& common,
                                    const AgentSettings& agent);



}  // namespace pacs::filesystem
