// [[filesystem]] table -> one "filesystem" ProbeSpec; the kind's descriptor.
#include "probes/filesystem/filesystem.h"

namespace pacs::filesystem {

std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon& common, const ConfigTable&) {
  FilesystemOptions opts;
  opts.path = table.string("path");
  if (opts.path.empty() || opts.path.front() != '/') table.fail("path", "must be an absolute path");
  // Shared so a stuck mount stays marked across reloads and /probe instances.
  auto watchdog = StatWatchdog::process_default();
  std::vector<ProbeSpec> specs;
  specs.push_back(make_spec(kind(), "filesystem", common, table, [opts, watchdog] {
    return std::make_unique<FilesystemProbe>(opts, watchdog);
  }));
  return specs;
}

const Kind& kind() {
  static const Kind k{
      .name = "filesystem",
      .summary = "image-store volumes: space, inodes, read-only, stuck mounts (statvfs under a watchdog)",
      .checks = {{"filesystem", "filesystem", filesystem_reasons()}},
      .parse = &parse_target,
      .figures = {{.label = "free", .metric = "pacs_filesystem_avail_bytes", .share_of = "pacs_filesystem_size_bytes"},
                  {.label = "inodes free", .metric = "pacs_filesystem_files_free", .share_of = "pacs_filesystem_files"},
                  {.label = "read-only", .metric = "pacs_filesystem_readonly", .flag = true},
                  {.label = "stuck", .metric = "pacs_filesystem_stuck", .flag = true}},
  };
  return k;
}

}  // namespace pacs::filesystem

namespace pacs::probe_kinds {
const Kind& filesystem() { return filesystem::kind(); }
}  // namespace pacs::probe_kinds
