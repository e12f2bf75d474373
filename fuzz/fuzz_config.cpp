// The config reader: TOML syntax through every kind's parser. A bad file must
// be a ConfigError (file:line: key: message), never a crash, a hang or
// another exception escaping to main.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/config.h"
#include "probes/config_table.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto cfg = pacs::parse_config(text, "fuzz.toml");
    for (const auto& p : cfg->probes) (void)p.make();  // building a probe does no I/O
  } catch (const pacs::ConfigError&) {
  }
  pacs::parse_duration(text);
  return 0;
}
