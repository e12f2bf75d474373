// make_spec() belongs to the framework (not the registry) so that probe-kind
// libraries can use it without a link cycle through the registry.
#include "probes/registry.h"

namespace pacs {

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

}  // namespace pacs
