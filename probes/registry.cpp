#include "probes/registry.h"

#include "probes/dicom/dicom.h"
#include "probes/filesystem/filesystem.h"
#include "probes/queue/queue.h"

namespace pacs {

const std::vector<SectionEntry>& config_sections() {
  static const std::vector<SectionEntry> sections = {
      {"dicom", &dicom::parse_target},
      {"filesystem", &filesystem::parse_target},
      {"queue", &queue::parse_target},
  };
  return sections;
}

ProbeSpec make_spec(std::string probe, const TargetCommon& common, const ConfigTable& table,
                    std::vector<Reason> reasons, std::function<std::unique_ptr<Probe>()> make) {
  ProbeSpec s;
  s.probe = std::move(probe);
  s.target = common.name;
  s.interval = common.interval;
  s.timeout = common.timeout;
  s.reasons = std::move(reasons);
  s.make = std::move(make);
  s.fingerprint = table.canonical();
  return s;
}

void initialize_probe_libraries(Logger& log) {
  dicom::global_init(log);
  queue::global_init(log);
}

void shutdown_probe_libraries() {
  queue::global_shutdown();
  dicom::global_shutdown();
}

}  // namespace pacs
