// The dicom probe kind's descriptor and process-wide set-up (dicom_global.cpp).
#pragma once

#include <vector>

#include "probes/kind.h"

namespace pacs::dicom {

const Kind& kind();

// Parses one [[dicom]] table into one ProbeSpec per check.
std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon& common, const ConfigTable& agent);
// Validates [agent] calling_ae_title, the AE title the agent calls with.
void read_agent_keys(const ConfigTable& agent);

// Once in main() before threads: logging into ours, dictionary, network warm-up.
void global_init(Logger& log);
void global_shutdown();

}  // namespace pacs::dicom
