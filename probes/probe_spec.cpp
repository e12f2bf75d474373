#include <stdexcept>

#include "probes/kind.h"

namespace pacs {

const CheckInfo* Kind::find_check(std::string_view check) const {
  for (const auto& c : checks)
    if (c.check == check) return &c;
  return nullptr;
}

ProbeSpec make_spec(const Kind& kind, std::string_view check, const TargetCommon& common, const ConfigTable& table,
                    std::vector<Reason> reasons, std::function<std::unique_ptr<Probe>()> make) {
  const CheckInfo* info = kind.find_check(check);
  // A kind asking for a check it does not declare is a bug in the kind.
  if (!info) throw std::logic_error("kind " + std::string(kind.name) + " has no check " + std::string(check));
  ProbeSpec s;
  s.kind = std::string(kind.name);
  s.check = std::string(info->check);
  s.probe = std::string(info->probe);
  s.target = common.name;
  s.interval = common.interval;
  s.timeout = common.timeout;
  s.reasons = std::move(reasons);
  s.make = std::move(make);
  s.fingerprint = table.canonical();
  return s;
}

ProbeSpec make_spec(const Kind& kind, std::string_view check, const TargetCommon& common, const ConfigTable& table,
                    std::function<std::unique_ptr<Probe>()> make) {
  const CheckInfo* info = kind.find_check(check);
  std::vector<Reason> reasons = info ? info->reasons : std::vector<Reason>{};
  return make_spec(kind, check, common, table, std::move(reasons), std::move(make));
}

}  // namespace pacs
