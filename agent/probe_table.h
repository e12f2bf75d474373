// Per-probe state kept across reloads (ResultStore's counters, TargetHistory's
// runs): the new table holds, in config order, the old entry of every probe
// whose identity did not change (same_probe) and a fresh one for every other.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "probes/probe.h"

namespace pacs {

using ProbeKey = std::pair<std::string, std::string>;  // probe, target

// Which probe a view (status page row, history) is about: its spec's identity fields.
struct ProbeIdentity {
  std::string kind, check, probe, target;
  void identify(const ProbeSpec& s) {
    kind = s.kind;
    check = s.check;
    probe = s.probe;
    target = s.target;
  }
};

// Entry has a `spec` member, which carry_over sets (without the factory `make`, so a
// kept entry holds nothing of the probe instance); fresh(spec) makes the rest of the
// entry of a new or changed probe.
template <class Entry, class Fresh>
void carry_over(std::map<ProbeKey, Entry>& entries, std::vector<ProbeKey>& order, const std::vector<ProbeSpec>& specs,
                Fresh fresh) {
  std::map<ProbeKey, Entry> next;
  std::vector<ProbeKey> next_order;
  for (const auto& spec : specs) {
    ProbeKey k{spec.probe, spec.target};
    auto it = entries.find(k);
    if (it != entries.end() && same_probe(it->second.spec, spec)) {
      next.emplace(k, std::move(it->second));
    } else {
      Entry e = fresh(spec);
      e.spec = spec;
      e.spec.make = nullptr;
      next.emplace(k, std::move(e));
    }
    next_order.push_back(std::move(k));
  }
  entries = std::move(next);
  order = std::move(next_order);
}

}  // namespace pacs
