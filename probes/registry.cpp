// The probe kinds built into the agent: one line per kind, nothing else to
// edit. Each line names a folder probes/<kind>/ whose code defines
// `const pacs::Kind& pacs::probe_kinds::<kind>()`; the build picks the folder up by
// itself and tests/unit/registry_test.cpp checks that folders and lines agree.
#define PACS_KINDS(KIND) \
  KIND(backup)           \
  KIND(dicom)            \
  KIND(dicomweb)         \
  KIND(filesystem)       \
  KIND(hl7)              \
  KIND(queue)

// ---------------------------------------------------------------------------
#include "probes/registry.h"

#include <stdexcept>

namespace pacs {

namespace probe_kinds {
#define PACS_DECLARE_KIND(name) const Kind& name();
PACS_KINDS(PACS_DECLARE_KIND)
#undef PACS_DECLARE_KIND
}  // namespace probe_kinds

const std::vector<const Kind*>& kinds() {
#define PACS_LIST_KIND(name) &probe_kinds::name(),
  static const std::vector<const Kind*> all = {PACS_KINDS(PACS_LIST_KIND)};
#undef PACS_LIST_KIND
  return all;
}

const Kind* find_kind(std::string_view name) {
  for (const Kind* k : kinds())
    if (k->name == name) return k;
  return nullptr;
}

void initialize_kinds(Logger& log) {
  const auto& all = kinds();
  for (size_t i = 0; i < all.size(); ++i) {
    if (!all[i]->init) continue;
    try {
      all[i]->init(log);
    } catch (...) {
      for (size_t j = i; j-- > 0;)
        if (all[j]->shutdown) all[j]->shutdown();
      throw;
    }
  }
}

void shutdown_kinds() {
  const auto& all = kinds();
  for (size_t i = all.size(); i-- > 0;)
    if (all[i]->shutdown) all[i]->shutdown();
}

}  // namespace pacs
