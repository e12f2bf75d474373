// Loading and validating the agent's TOML config.
//
// All defaults live here and in the probe kinds' parsers (one place per
// setting); docs/configuration.md lists them. Errors are ConfigError with
// "file:line: key.path: message". A Config is immutable once loaded and is
// shared read-only between the scheduler, the HTTP server and /probe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "probes/kind.h"

namespace pacs {

// The longest probe timeout a config may set. Shutdown waits for running
// probes up to their deadline, so the systemd unit's TimeoutStopSec is set
// above it, and so is the HTTP server's handler timeout.
inline constexpr Duration kMaxProbeTimeout = std::chrono::minutes(2);

// The agent's own [agent] keys (kinds read the [agent] keys they own, such as
// dicom's calling_ae_title, through their descriptor).
struct AgentSettings {
  Duration default_interval = std::chrono::seconds(30);
  Duration default_timeout = std::chrono::seconds(10);
  int max_concurrent_probes = 8;
};

struct WebSettings {
  std::vector<std::string> listen_addresses{"0.0.0.0:9727"};
  // Optional TLS and basic auth for every endpoint (exporter-toolkit style).
  std::string tls_cert_file, tls_key_file, tls_client_ca_file;
  std::map<std::string, std::string> basic_auth_users;  // user -> bcrypt hash
  bool operator==(const WebSettings&) const = default;
};

struct Config {
  std::string source;  // file path, or "<embedded default>"
  // Files read through [agent] include, in the order their targets were added
  // (after the main file's own targets).
  std::vector<std::string> included_files;
  AgentSettings agent;
  WebSettings web;
  std::vector<ProbeSpec> probes;  // in file order

  struct Target {
    std::string name;
    std::string kind;                      // its section: "dicom", "filesystem", "queue", ...
    std::vector<const ProbeSpec*> probes;  // its checks, in config order
  };
  std::vector<Target> targets;

  const Target* find_target(std::string_view name) const;
};

// Throws ConfigError. `display_name` is used in messages (usually the path);
// `[agent] include` patterns are relative to its directory. Included files
// hold only target sections; their targets follow the main file's, and a
// target name must be unique across all of them.
std::shared_ptr<const Config> parse_config(std::string_view toml_text, const std::string& display_name);
std::shared_ptr<const Config> load_config_file(const std::string& path);
// The config the agent runs on without --config.file.
std::shared_ptr<const Config> default_config();
const char* default_config_text();

// Splits "host:port" / "[v6]:port"; false when malformed or port out of range.
bool split_host_port(std::string_view s, std::string& host, int& port);

}  // namespace pacs
