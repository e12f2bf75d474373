// PLACEHOLDER until the filesystem probe kind lands: rejects every [[filesystem]] table.
#include "probes/filesystem/filesystem.h"

namespace pacs::filesystem {
std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon&, const AgentSettings&) {
  table.fail_table("probe kind not implemented yet");
}

}  // namespace pacs::filesystem
