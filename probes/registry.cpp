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

void initialize_probe_libraries(Logger& log) {
  dicom::global_init(log);
  queue::global_init(log);
}

void shutdown_probe_libraries() {
  queue::global_shutdown();
  dicom::global_shutdown();
}

}  // namespace pacs
