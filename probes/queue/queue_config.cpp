// [[queue]] table -> one ProbeSpec, dispatched on `type` through an
// explicit map (no self-registration).
#include <curl/curl.h>

#include <map>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "probes/log.h"
#include "probes/queue/queue.h"

namespace pacs::queue {

namespace {

std::string parse_url(const ConfigTable& t, const char* key = "url") {
  std::string url = t.string(key);
  static const std::regex re(R"(^https?://[^/?#@\s]+(/[^\s]*)?$)", std::regex::icase);
  if (!std::regex_match(url, re)) {
    if (url.find('@') != std::string::npos && url.find("://") != std::string::npos) {
      t.fail(key, "must not contain credentials; use username with password_file or password_env");
    }
    t.fail(key, "must be an http:// or https:// URL");
  }
  return url;
}

std::string strip_slash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

HttpSettings parse_http(const ConfigTable& t) {
  HttpSettings h;
  h.username = t.string("username", "");
  h.password_file = t.string("password_file", "");
  h.password_env = t.string("password_env", "");
  h.ca_file = t.string("ca_file", "");
  h.insecure_skip_verify = t.boolean("insecure_skip_verify", false);
  if (!h.password_file.empty() && !h.password_env.empty()) {
    t.fail("password_env", "set either password_file or password_env, not both");
  }
  if (!h.username.empty() && h.password_file.empty() && h.password_env.empty()) {
    t.fail("username", "needs password_file or password_env (passwords are never written in the config)");
  }
  if (h.username.empty() && (!h.password_file.empty() || !h.password_env.empty())) {
    t.fail(!h.password_file.empty() ? "password_file" : "password_env", "needs username");
  }
  if (!h.password_file.empty() && h.password_file.front() != '/') t.fail("password_file", "must be an absolute path");
  if (!h.ca_file.empty() && h.ca_file.front() != '/') t.fail("ca_file", "must be an absolute path");
  return h;
}

// Label values must stay bounded and printable.
bool valid_label_value(const std::string& s) {
  static const std::regex re("^[A-Za-z0-9_.:-]{1,64}$");
  return std::regex_match(s, re);
}

ProbeSpec parse_directory(const ConfigTable& t, const TargetCommon& common) {
  SpoolOptions o;
  o.path = t.string("path");
  if (o.path.empty() || o.path.front() != '/') t.fail("path", "must be an absolute path");
  o.pattern = t.string("pattern", "");
  if (t.has("pattern") && o.pattern.empty()) t.fail("pattern", "must not be empty (omit it to count every file)");
  if (o.pattern.find('/') != std::string::npos) t.fail("pattern", "matches file names only; must not contain '/'");
  o.recursive = t.boolean("recursive", false);
  if (t.has("max_depth") && !o.recursive) t.fail("max_depth", "only applies with recursive = true");
  o.max_depth = static_cast<int>(t.integer("max_depth", o.max_depth, 1, 64));
  o.include_hidden = t.boolean("include_hidden", false);
  return make_spec("queue_directory", common, t, directory_reasons(),
                   [o] { return std::make_unique<SpoolDirectoryProbe>(o); });
}

ProbeSpec parse_orthanc(const ConfigTable& t, const TargetCommon& common) {
  std::string url = strip_slash(parse_url(t));
  HttpSettings http = parse_http(t);
  return make_spec("queue_orthanc", common, t, http_reasons(),
                   [url, http] { return std::make_unique<OrthancJobsProbe>(url, http); });
}

ProbeSpec parse_dcm4chee(const ConfigTable& t, const TargetCommon& common) {
  std::string url = strip_slash(parse_url(t));
  if (!t.has("queues")) t.fail_table("missing required key \"queues\"");
  auto queues = t.string_array("queues", {});
  if (queues.empty()) t.fail("queues", "must name at least one queue (e.g. [\"StgCmtSCU\", \"Export1\"])");
  std::set<std::string> seen;
  for (const auto& q : queues) {
    if (!valid_label_value(q)) t.fail("queues", "invalid queue name \"" + q + "\" (letters, digits, _ . : -)");
    if (!seen.insert(q).second) t.fail("queues", "duplicate queue name \"" + q + "\"");
  }
  HttpSettings http = parse_http(t);
  return make_spec("queue_dcm4chee", common, t, http_reasons(),
                   [url, queues, http] { return std::make_unique<Dcm4cheeQueuesProbe>(url, queues, http); });
}

ProbeSpec parse_http_json(const ConfigTable& t, const TargetCommon& common) {
  std::string url = parse_url(t);
  if (!t.has("values")) t.fail_table("missing required key \"values\"");
  std::vector<JsonValueSpec> values;
  std::set<std::string> names;
  for (const auto& v : t.table_array("values")) {
    JsonValueSpec s;
    s.name = v.string("name");
    if (!valid_label_value(s.name)) v.fail("name", "must be 1..64 of letters, digits, _ . : -");
    if (!names.insert(s.name).second) v.fail("name", "duplicate value name \"" + s.name + "\"");
    s.pointer = v.string("pointer");
    try {
      nlohmann::json::json_pointer p(s.pointer);
    } catch (const nlohmann::json::exception&) {
      v.fail("pointer", "invalid JSON pointer \"" + s.pointer + "\" (RFC 6901, e.g. \"/queues/0/depth\")");
    }
    values.push_back(std::move(s));
  }
  if (values.empty()) t.fail("values", "must list at least one { name, pointer }");
  HttpSettings http = parse_http(t);
  return make_spec("queue_http_json", common, t, http_reasons(),
                   [url, values, http] { return std::make_unique<HttpJsonProbe>(url, values, http); });
}

using TypeParser = ProbeSpec (*)(const ConfigTable&, const TargetCommon&);
const std::map<std::string, TypeParser>& types() {
  static const std::map<std::string, TypeParser> m = {
      {"directory", &parse_directory},
      {"orthanc", &parse_orthanc},
      {"dcm4chee", &parse_dcm4chee},
      {"http_json", &parse_http_json},
  };
  return m;
}

}  // namespace

std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon& common, const AgentSettings&) {
  std::string type = table.string("type");
  auto it = types().find(type);
  if (it == types().end()) {
    table.fail("type", "unknown queue type \"" + type + "\" (known: directory, orthanc, dcm4chee, http_json)");
  }
  std::vector<ProbeSpec> specs;
  specs.push_back(it->second(table, common));
  return specs;
}

void global_init(Logger& log) {
  CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK) {
    log.error("curl_global_init failed", {{"error", curl_easy_strerror(rc)}});
    return;
  }
  log.debug("libcurl initialised", {{"version", curl_version()}});
}

void global_shutdown() { curl_global_cleanup(); }

}  // namespace pacs::queue
