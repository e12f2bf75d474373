// Entry points of the dicom probe kind used by probes/registry.cpp.
#pragma once

#include <vector>

#include "probes/registry.h"

namespace pacs::dicom {

// Parses one [[dicom]] table into one ProbeSpec per check.
std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon& common,
                                    const AgentSettings& agent);
// Once in main() before threads: logging into ours, dictionary, network warm-up.
void global_init(Logger& log);
void global_shutdown();


}  // namespace pacs::dicom
