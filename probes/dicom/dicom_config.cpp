// PLACEHOLDER until the dicom probe kind lands: rejects every [[dicom]] table.
#include "probes/dicom/dicom.h"

namespace pacs::dicom {
std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon&, const AgentSettings&) {
  table.fail_table("probe kind not implemented yet");
}
void global_init(Logger&) {}
void global_shutdown() {}
}  // namespace pacs::dicom
