#include "agent/flags.h"

#include "probes/registry.h"

namespace pacs {

const char* const kUsage = R"(usage: pacs-agent [flags]

Prometheus exporter for PACS nodes: DICOM probes, storage and queue checks.

Flags:
  --config.file=PATH           TOML configuration file (default: embedded default:
                               self metrics and the root filesystem)
  --web.listen-address=ADDR    address to listen on, host:port; may repeat
                               (default: [web] listen_address, else 0.0.0.0:9727)
  --web.enable-lifecycle       allow reloading the configuration by HTTP
                               (POST /-/reload); off by default, SIGHUP always works
  --config.check               validate the configuration, print the result and exit
                               (0 = valid, 1 = invalid)
  --log.level=LEVEL            debug, info, warn or error (default: info)
  --version                    print version information and exit
  -h, --help                   show this help
)";

bool parse_flags(int argc, char** argv, Flags& f, std::string& err) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string name = a, value;
    bool has_value = false;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    }
    auto take = [&]() -> bool {
      if (has_value) return true;
      if (i + 1 >= argc) {
        err = "flag " + name + " needs a value";
        return false;
      }
      value = argv[++i];
      return true;
    };
    if (name == "--config.file") {
      if (!take()) return false;
      f.config_file = value;
    } else if (name == "--web.listen-address") {
      if (!take()) return false;
      f.listen.push_back(value);
    } else if (name == "--log.level") {
      if (!take()) return false;
      f.log_level = value;
    } else if (name == "--web.enable-lifecycle" && !has_value) {
      f.enable_lifecycle = true;
    } else if (name == "--config.check" && !has_value) {
      f.check = true;
    } else if (name == "--version" && !has_value) {
      f.version = true;
    } else if ((name == "--help" || name == "-h") && !has_value) {
      f.help = true;
    } else {
      err = "unknown flag " + name;
      return false;
    }
  }
  return true;
}

std::string version_text() {
  std::string libs;
  for (const Kind* k : kinds()) {
    if (!k->versions) continue;
    for (const auto& v : k->versions()) {
      if (libs.find(v) != std::string::npos) continue;
      libs += v + ", ";
    }
  }
  std::string kinds_list;
  for (const Kind* k : kinds()) kinds_list += (kinds_list.empty() ? "" : ", ") + std::string(k->name);
  return std::string("pacs-agent, version ") + PACS_AGENT_VERSION + " (" + libs + "gcc " + __VERSION__ +
         ")\nprobe kinds: " + kinds_list + "\n";
}

}  // namespace pacs
