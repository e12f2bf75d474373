#include "agent/config.h"

#include <glob.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include <toml.hpp>

#include "agent/http_server.h"
#include "probes/config_table.h"
#include "probes/registry.h"

namespace pacs {

namespace {

// Self metrics only until a probe kind adds itself to the default.
constexpr const char* kDefaultConfig = R"(# Embedded default: used when no --config.file is given.
[agent]
interval = "30s"
timeout = "10s"

[[filesystem]]
name = "root"
path = "/"
)";

bool valid_target_name(const std::string& s) {
  static const std::regex re("^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$");
  return std::regex_match(s, re);
}


std::string first_line(std::string s) {
  auto nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  if (s.rfind("[error] ", 0) == 0) s = s.substr(8);
  return s;
}

// The [agent] table, or an empty one when the file has none.
ConfigTable agent_table(const toml::value& root) {
  auto& t = root.as_table();
  auto it = t.find("agent");
  if (it == t.end()) return ConfigTable::empty("agent");
  if (!it->second.is_table()) {
    throw ConfigError(config_location(it->second) + ": agent: must be a table ([agent])");
  }
  return ConfigTable(it->second, "agent");
}

AgentSettings parse_agent(const ConfigTable& at) {
  AgentSettings a;
  a.default_interval = at.duration("interval", a.default_interval);
  a.default_timeout = at.duration("timeout", a.default_timeout);
  if (a.default_timeout > a.default_interval) at.fail("timeout", "must not exceed agent.interval");
  if (a.default_timeout > kMaxProbeTimeout) at.fail("timeout", "must be at most " + format_duration(kMaxProbeTimeout));
  a.max_concurrent_probes = static_cast<int>(at.integer("max_concurrent_probes", a.max_concurrent_probes, 1, 256));
  for (const Kind* k : kinds())
    if (k->agent_keys) k->agent_keys(at);
  at.check_unknown_keys();
  return a;
}

WebSettings parse_web(const toml::value& root) {
  WebSettings w;
  auto& t = root.as_table();
  auto it = t.find("web");
  if (it == t.end()) return w;
  if (!it->second.is_table()) throw ConfigError(config_location(it->second) + ": web: must be a table ([web])");
  ConfigTable wt(it->second, "web");
  if (wt.has("listen_address")) {
    const auto& v = it->second.as_table().at("listen_address");
    std::vector<std::string> addrs =
        v.is_array() ? wt.string_array("listen_address", {}) : std::vector<std::string>{wt.string("listen_address")};
    if (addrs.empty()) wt.fail("listen_address", "must name at least one address");
    for (const auto& a : addrs) {
      std::string host;
      int port;
      if (!split_host_port(a, host, port)) wt.fail("listen_address", "invalid address \"" + a + "\" (want host:port)");
    }
    w.listen_addresses = addrs;
  }
  w.tls_cert_file = wt.string("tls_cert_file", "");
  w.tls_key_file = wt.string("tls_key_file", "");
  w.tls_client_ca_file = wt.string("tls_client_ca_file", "");
  if (w.tls_cert_file.empty() != w.tls_key_file.empty()) {
    wt.fail(w.tls_cert_file.empty() ? "tls_key_file" : "tls_cert_file", "tls_cert_file and tls_key_file go together");
  }
  if (!w.tls_client_ca_file.empty() && w.tls_cert_file.empty()) {
    wt.fail("tls_client_ca_file", "needs tls_cert_file and tls_key_file");
  }
  if (!w.tls_cert_file.empty()) {
    try {
      check_tls_files(w.tls_cert_file, w.tls_key_file, w.tls_client_ca_file);
    } catch (const std::exception& e) {
      wt.fail("tls_cert_file", e.what());
    }
  }
  if (auto users = wt.table("basic_auth_users")) {
    for (const auto& user : users->keys()) {
      std::string hash = users->string(user);
      if (user.empty() || user.find(':') != std::string::npos) users->fail(user, "user names cannot be empty or contain ':'");
      if (!is_bcrypt_hash(hash)) users->fail(user, "must be a bcrypt hash ($2a$/$2b$/$2y$, 60 characters), e.g. from htpasswd -nB");
      w.basic_auth_users[user] = hash;
    }
  }
  wt.check_unknown_keys();
  return w;
}

}  // namespace

bool split_host_port(std::string_view s, std::string& host, int& port) {
  size_t colon;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') return false;
    host = std::string(s.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = s.rfind(':');
    if (colon == std::string_view::npos) return false;
    host = std::string(s.substr(0, colon));
    if (host.find(':') != std::string::npos) return false;
  }
  auto p = s.substr(colon + 1);
  if (p.empty() || p.size() > 5) return false;
  port = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
    port = port * 10 + (c - '0');
  }
  return port <= 65535;
}

const Config::Target* Config::find_target(std::string_view name) const {
  for (const auto& t : targets)
    if (t.name == name) return &t;
  return nullptr;
}

namespace {

toml::value parse_toml(std::string_view text, const std::string& display_name) {
  try {
    std::istringstream in{std::string(text)};
    return toml::parse(in, display_name);
  } catch (const toml::exception& e) {
    throw ConfigError(display_name + ":" + std::to_string(e.location().line()) + ": syntax error: " +
                      first_line(e.what()));
  } catch (const std::exception& e) {
    throw ConfigError(display_name + ": " + first_line(e.what()));
  }
}

// The file's text; nullopt with `err` set when it cannot be read.
std::optional<std::string> read_text(const std::string& path, std::string& err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    err = std::strerror(errno);
    return std::nullopt;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    err = "read error";
    return std::nullopt;
  }
  return ss.str();
}

// [agent] without `include`, canonical: part of every probe's fingerprint.
// `include` is left out so that adding a file to conf.d (or another glob)
// does not reset the counters of every probe already running.
std::string agent_fingerprint(const toml::value& root) {
  auto& t = root.as_table();
  auto it = t.find("agent");
  if (it == t.end() || !it->second.is_table()) return ConfigTable::empty("agent").canonical();
  toml::value copy = it->second;
  copy.as_table().erase("include");
  return ConfigTable(copy, "agent").canonical();
}

bool has_glob_chars(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

std::string escape_glob(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

thread_local std::string glob_error;  // set by glob_errfunc during one glob() call
int glob_errfunc(const char* path, int eerrno) {
  if (eerrno != ENOENT && eerrno != ENOTDIR && glob_error.empty()) {
    glob_error = std::string(path) + ": " + std::strerror(eerrno);
  }
  return 0;  // keep going; the error is reported after glob() returns
}

// The files `[agent] include` names, in order: patterns in the order given,
// the matches of one pattern sorted byte-wise, each file once, the main file
// never. Relative patterns are relative to the main file's directory.
std::vector<std::string> expand_includes(const ConfigTable& agent, const std::vector<std::string>& patterns,
                                         const std::string& main_file) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  std::set<fs::path> seen;
  std::error_code ec;
  fs::path main_canon = fs::weakly_canonical(main_file, ec);
  if (!ec) seen.insert(main_canon);
  fs::path base = fs::path(main_file).parent_path();
  for (const auto& pattern : patterns) {
    if (pattern.empty()) agent.fail("include", "an empty pattern");
    std::string full = !pattern.empty() && pattern.front() == '/'
                           ? pattern
                           : (base.empty() ? pattern : escape_glob(base.string()) + "/" + pattern);
    glob_t g{};
    glob_error.clear();
    int rc = ::glob(full.c_str(), 0, glob_errfunc, &g);
    std::vector<std::string> matches;
    if (rc == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) matches.emplace_back(g.gl_pathv[i]);
    }
    globfree(&g);
    if (!glob_error.empty()) agent.fail("include", "\"" + pattern + "\": cannot read " + glob_error);
    if (rc != 0 && rc != GLOB_NOMATCH) agent.fail("include", "\"" + pattern + "\": cannot expand the pattern");
    if (matches.empty() && !has_glob_chars(pattern)) {
      agent.fail("include", "\"" + pattern + "\": no such file (" + full + ")");
    }
    std::sort(matches.begin(), matches.end());
    for (const auto& m : matches) {
      std::error_code sec;
      if (!fs::is_regular_file(m, sec)) {
        // A directory matched by a wildcard is skipped; one named outright is a mistake.
        if (!has_glob_chars(pattern)) agent.fail("include", "\"" + pattern + "\": not a regular file");
        continue;
      }
      fs::path canon = fs::weakly_canonical(m, sec);
      if (!seen.insert(sec ? fs::path(m) : canon).second) continue;
      files.push_back(m);
    }
  }
  return files;
}

}  // namespace

std::shared_ptr<const Config> parse_config(std::string_view text, const std::string& display_name) {
  toml::value root = parse_toml(text, display_name);

  auto cfg = std::make_shared<Config>();
  cfg->source = display_name;
  ConfigTable agent = agent_table(root);
  std::vector<std::string> patterns = agent.string_array("include", {});
  cfg->agent = parse_agent(agent);
  std::string agent_fp = agent_fingerprint(root);
  cfg->web = parse_web(root);

  std::map<std::string, std::string> names;  // target name -> "file:line" of its name key
  std::vector<std::pair<std::string, std::string>> target_sections;  // name, section

  // Adds the target sections of one file (the main one or an included one).
  auto add_targets = [&](const toml::value& file_root, bool included) {
    // Keep file order across sections so messages and /metrics are stable.
    std::vector<std::pair<std::uint_least32_t, std::string>> top;
    for (const auto& [k, v] : file_root.as_table()) top.emplace_back(v.location().line(), k);
    std::sort(top.begin(), top.end());
    for (const auto& [line, key] : top) {
      (void)line;
      const toml::value& v = file_root.as_table().at(key);
      if (key == "agent" || key == "web") {
        if (!included) continue;
        throw ConfigError(config_location(v) + ": " + key + ": not allowed in an included file (included files " +
                          "hold only target sections such as [[dicom]]; [agent] and [web] belong in the main file)");
      }
      const Kind* sec = find_kind(key);
      if (!sec) {
        std::string known = included ? "" : "agent, web";
        for (const Kind* k : kinds()) known += (known.empty() ? "" : ", ") + std::string(k->name);
        throw ConfigError(config_location(v) + ": " + key + ": unknown section or top-level key (known: " + known +
                          ")");
      }
      if (!v.is_array()) {
        throw ConfigError(config_location(v) + ": " + key + ": must be an array of tables (write [[" + key + "]])");
      }
      size_t i = 0;
      for (const auto& entry : v.as_array()) {
        std::string path = key + "[" + std::to_string(i++) + "]";
        if (!entry.is_table()) throw ConfigError(config_location(entry) + ": " + path + ": must be a table");
        ConfigTable t(entry, path);
        TargetCommon common;
        common.name = t.string("name");
        if (!valid_target_name(common.name)) {
          t.fail("name", "must match [A-Za-z0-9][A-Za-z0-9_.-]* and be at most 64 characters");
        }
        std::string here = config_location(entry.as_table().at("name"));
        auto [first, fresh] = names.emplace(common.name, here);
        if (!fresh) {
          t.fail("name", "duplicate target name \"" + common.name + "\" (first defined at " + first->second + ")");
        }
        common.interval = t.duration("interval", cfg->agent.default_interval);
        common.timeout = t.duration("timeout", std::min(cfg->agent.default_timeout, common.interval));
        if (common.timeout > common.interval) {
          t.fail("timeout", "must not exceed interval (" + format_duration(common.interval) + ")");
        }
        if (common.timeout > kMaxProbeTimeout) t.fail("timeout", "must be at most " + format_duration(kMaxProbeTimeout));
        auto specs = sec->parse(t, common, agent);
        t.check_unknown_keys();
        // Everything that shapes a probe: its table, its effective interval and
        // timeout (possibly from [agent] defaults) and [agent] itself.
        for (auto& s : specs) {
          s.fingerprint = key + "|" + s.fingerprint + "|" + std::to_string(common.interval.count()) + "|" +
                          std::to_string(common.timeout.count()) + "|" + agent_fp;
        }
        for (auto& s : specs) cfg->probes.push_back(std::move(s));
        target_sections.emplace_back(common.name, key);
      }
    }
  };

  add_targets(root, false);
  for (const auto& file : expand_includes(agent, patterns, display_name)) {
    std::string err;
    auto text_of_file = read_text(file, err);
    if (!text_of_file) agent.fail("include", file + ": cannot open: " + err);
    add_targets(parse_toml(*text_of_file, file), true);
    cfg->included_files.push_back(file);
  }

  for (const auto& [name, section] : target_sections) {
    Config::Target t{name, section, {}};
    for (const auto& p : cfg->probes)
      if (p.target == name) t.probes.push_back(&p);
    cfg->targets.push_back(std::move(t));
  }
  return cfg;
}

std::shared_ptr<const Config> load_config_file(const std::string& path) {
  std::string err;
  auto text = read_text(path, err);
  if (!text) throw ConfigError(path + ": cannot open: " + err);
  return parse_config(*text, path);
}

const char* default_config_text() { return kDefaultConfig; }

std::shared_ptr<const Config> default_config() { return parse_config(kDefaultConfig, "<embedded default>"); }

}  // namespace pacs
