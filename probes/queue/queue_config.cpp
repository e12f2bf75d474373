// PLACEHOLDER until the queue probe kind lands: rejects every [[queue]] table.
#include "probes/queue/queue.h"

namespace pacs::queue {
std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon&, const AgentSettings&) {
  table.fail_table("probe kind not implemented yet");
}
void global_init(Logger&) {}
void global_shutdown() {}
}  // namespace pacs::queue
