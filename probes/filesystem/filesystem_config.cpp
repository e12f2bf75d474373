// [[filesystem]] table -> one "filesystem" ProbeSpec.
#include "probes/filesystem/filesystem.h"

namespace pacs::filesystem {

std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon& common, const AgentSettings&) {
  FilesystemOptions opts;
  opts.path = table.string("path");
  if (opts.path.empty() || opts.path.front() != '/') table.fail("path", "must be an absolute path");
  // Shared so a stuck mount stays marked across reloads and /probe instances.
  auto watchdog = StatWatchdog::process_default();
  std::vector<ProbeSpec> specs;
  specs.push_back(make_spec("filesystem", common, table, filesystem_reasons(), [opts, watchdog] {
    return std::make_unique<FilesystemProbe>(opts, watchdog);
  }));
  return specs;
}

}  // namespace pacs::filesystem
