// [[backup]] table -> one "backup" ProbeSpec; the kind's descriptor. Every
// default lives here; README.md lists them.
#include "probes/backup/backup.h"

namespace pacs::backup {

std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon& common, const ConfigTable&) {
  BackupOptions o;
  o.path = table.string("path");
  if (o.path.empty() || o.path.front() != '/') table.fail("path", "must be an absolute path");
  if (auto p = table.optional_string("pattern")) {
    if (p->empty()) table.fail("pattern", "must not be empty (omit it when path is the backup file itself)");
    if (p->find('/') != std::string::npos) table.fail("pattern", "matches file names in path only; must not contain '/'");
    o.pattern = *p;
  }
  o.max_age = table.duration("max_age", o.max_age);  // > 0, checked by the reader
  o.min_bytes = static_cast<std::uint64_t>(table.integer("min_bytes", 0, 0, INT64_MAX));
  // Shared so a stuck path stays marked across reloads and /probe instances.
  auto watchdog = ScanWatchdog::process_default();
  std::vector<ProbeSpec> specs;
  specs.push_back(make_spec(kind(), "backup", common, table,
                            [o, watchdog] { return std::make_unique<BackupProbe>(o, watchdog); }));
  return specs;
}

const Kind& kind() {
  static const Kind k{
      .name = "backup",
      .summary = "backups: age and size of the newest backup file in a folder, or of one file (stuck-mount safe)",
      .checks = {{"backup", "backup", backup_reasons()}},
      .parse = &parse_target,
  };
  return k;
}

}  // namespace pacs::backup

namespace pacs::probe_kinds {
const Kind& backup() { return backup::kind(); }
}  // namespace pacs::probe_kinds
