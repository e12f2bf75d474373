// [[queue]] table -> one ProbeSpec, dispatched on `type` through an
// explicit map (no self-registration); the kind's descriptor.
#include <map>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "probes/log.h"
#include "probes/queue/orthanc_changes.h"
#include "probes/queue/queue.h"

namespace pacs::queue {

namespace {

std::string strip_slash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
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
  return make_spec(kind(), "directory", common, t,
                   [o] { return std::make_unique<SpoolDirectoryProbe>(o); });
}

ProbeSpec parse_orthanc(const ConfigTable& t, const TargetCommon& common) {
  std::string url = strip_slash(http::read_url(t));
  http::Settings http = http::read_settings(t, /*flat_keys=*/true);
  std::shared_ptr<ChangeFollower> changes;
  if (t.boolean("ingest_counters", true)) {
    std::string state_file = t.string("state_file", default_state_file(common.name));
    if (state_file.empty() || state_file.front() != '/' || state_file.back() == '/') {
      t.fail("state_file", "must be the absolute path of a file");
    }
    // Shared with /probe instances and kept across reloads: one follower per file.
    changes = ChangeFollower::for_state_file(state_file);
  } else if (t.has("state_file")) {
    t.fail("state_file", "only applies with ingest_counters = true");
  }
  return make_spec(kind(), "orthanc", common, t,
                   [url, http, changes] { return std::make_unique<OrthancJobsProbe>(url, http, changes); });
}

ProbeSpec parse_dcm4chee(const ConfigTable& t, const TargetCommon& common) {
  std::string url = strip_slash(http::read_url(t));
  if (!t.has("queues")) t.fail_table("missing required key \"queues\"");
  auto queues = t.string_array("queues", {});
  if (queues.empty()) t.fail("queues", "must name at least one queue (e.g. [\"StgCmtSCU\", \"Export1\"])");
  std::set<std::string> seen;
  for (const auto& q : queues) {
    if (!valid_label_value(q)) t.fail("queues", "invalid queue name \"" + q + "\" (letters, digits, _ . : -)");
    if (!seen.insert(q).second) t.fail("queues", "duplicate queue name \"" + q + "\"");
  }
  http::Settings http = http::read_settings(t, /*flat_keys=*/true);
  return make_spec(kind(), "dcm4chee", common, t,
                   [url, queues, http] { return std::make_unique<Dcm4cheeQueuesProbe>(url, queues, http); });
}

ProbeSpec parse_http_json(const ConfigTable& t, const TargetCommon& common) {
  std::string url = http::read_url(t);
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
  http::Settings http = http::read_settings(t, /*flat_keys=*/true);
  return make_spec(kind(), "http_json", common, t,
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

std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon& common, const ConfigTable&) {
  std::string type = table.string("type");
  auto it = types().find(type);
  if (it == types().end()) {
    table.fail("type", "unknown queue type \"" + type + "\" (known: directory, orthanc, dcm4chee, http_json)");
  }
  std::vector<ProbeSpec> specs;
  specs.push_back(it->second(table, common));
  return specs;
}

const Kind& kind() {
  static const Kind k{
      .name = "queue",
      .summary = "PACS spool folders and job queues (Orthanc jobs, dcm4chee task queues, JSON endpoints)",
      .checks = {{"directory", "queue_directory", directory_reasons()},
                 {"orthanc", "queue_orthanc", http_reasons()},
                 {"dcm4chee", "queue_dcm4chee", http_reasons()},
                 {"http_json", "queue_http_json", http_reasons()}},
      .parse = &parse_target,
      .init = [](Logger&) { http::global_init(); },
      .shutdown = [] { http::global_shutdown(); },
      .versions = [] { return std::vector<std::string>{http::curl_version_line()}; },
      .figures = {{.label = "items", .metric = "pacs_queue_items", .check = "directory"},
                  {.label = "size", .metric = "pacs_queue_bytes", .check = "directory"},
                  {.label = "jobs", .metric = "pacs_queue_items", .split_by = "state", .check = "orthanc"},
                  {.label = "tasks", .metric = "pacs_queue_items", .split_by = "state", .check = "dcm4chee"},
                  {.label = "oldest", .metric = "pacs_queue_oldest_item_age_seconds"},
                  {.label = "studies", .metric = "pacs_archive_studies", .check = "orthanc"},
                  {.label = "", .metric = "pacs_queue_json_value", .split_by = "name", .check = "http_json"},
                  {.label = "partial scan", .metric = "pacs_queue_scan_partial", .flag = true}},
  };
  return k;
}

}  // namespace pacs::queue

namespace pacs::probe_kinds {
const Kind& queue() { return queue::kind(); }
}  // namespace pacs::probe_kinds
