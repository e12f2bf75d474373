// Command-line flags, Prometheus style (--flag=value or --flag value).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace pacs {

struct Flags {
  std::optional<std::string> config_file;
  std::vector<std::string> listen;
  bool check = false, version = false, help = false;
  bool enable_lifecycle = false;  // --web.enable-lifecycle
  std::string log_level = "info";
};

extern const char* const kUsage;

// False with `err` set on an unknown flag or a missing value.
bool parse_flags(int argc, char** argv, Flags& f, std::string& err);

// "pacs-agent, version X (dcmtk 3.6.7, libcurl ..., gcc ...)": the agent's
// version and every probe kind's library versions.
std::string version_text();

}  // namespace pacs
