// type = "orthanc": Orthanc's jobs engine (GET /jobs?expand), archive
// contents (GET /statistics) and, with ingest counters on, its change log
// (orthanc_changes.cpp). Counts only: nothing from a job's content
// (resource IDs, patient data) leaves this file.
#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>
#include <set>

#include "probes/queue/http_probe_util.h"
#include "probes/queue/orthanc_changes.h"
#include "probes/queue/queue.h"

namespace pacs::queue {

namespace {

// Orthanc's job states (JobsEngine), in the order they are exported.
const std::vector<std::string> kStates = {"Pending", "Running", "Paused", "Failure", "Success", "Retry"};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Job types are Orthanc's own identifiers ("DicomModalityStore", ...); keep
// the label bounded even if a plugin reports something odd.
std::string label_value(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.') out += c;
    if (out.size() >= 64) break;
  }
  return out.empty() ? "unknown" : out;
}

// "20240131T235959.123456" (boost::posix_time ISO basic, UTC) -> Unix seconds.
std::optional<double> parse_orthanc_time(const std::string& s) {
  if (s.size() < 15 || s[8] != 'T') return std::nullopt;
  for (size_t i = 0; i < 15; ++i)
    if (i != 8 && !std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
  std::tm tm{};
  tm.tm_year = std::stoi(s.substr(0, 4)) - 1900;
  tm.tm_mon = std::stoi(s.substr(4, 2)) - 1;
  tm.tm_mday = std::stoi(s.substr(6, 2));
  tm.tm_hour = std::stoi(s.substr(9, 2));
  tm.tm_min = std::stoi(s.substr(11, 2));
  tm.tm_sec = std::stoi(s.substr(13, 2));
  double frac = 0;
  if (s.size() > 16 && s[15] == '.') frac = std::stod("0" + s.substr(15));
  return static_cast<double>(timegm(&tm)) + frac;
}

double as_number(const nlohmann::json& v, bool& ok) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {  // Orthanc sends TotalDiskSize as a string
    try {
      size_t used = 0;
      double d = std::stod(v.get<std::string>(), &used);
      if (used == v.get<std::string>().size()) return d;
    } catch (const std::exception&) {
    }
  }
  ok = false;
  return 0;
}

}  // namespace

ProbeResult OrthancJobsProbe::run(const ProbeContext& ctx) {
  http::Client http(http_);
  ProbeResult r = jobs_and_statistics(http, ctx);
  // Ingest counters: follow the change log when the rest worked; export the
  // counters in any case (they are totals, not a reading of this run).
  if (changes_) changes_->follow(http, url_, ctx, r, /*fetch=*/r.success);
  return r;
}

ProbeResult OrthancJobsProbe::jobs_and_statistics(http::Client& http, const ProbeContext& ctx) {
  ProbeResult r = orthanc_jobs_answer(ProbeResult::ok(), http.get(url_ + "/jobs?expand", ctx));
  if (!r.success) return r;
  return orthanc_statistics_answer(std::move(r), http.get(url_ + "/statistics", ctx));
}

// 1. Jobs.
ProbeResult orthanc_jobs_answer(ProbeResult r, const http::Response& h) {
  detail::add_status_code(r, h);
  if (!h.ok) return detail::fail_from(std::move(r), h);
  auto jobs = detail::parse_json(h, "GET /jobs?expand", r);
  if (!jobs) return r;
  if (!jobs->is_array()) return detail::protocol_error(std::move(r), "GET /jobs?expand: expected a JSON array");

  std::map<std::pair<std::string, std::string>, int> counts;  // (state, type)
  std::set<std::string> types;
  std::optional<double> oldest_pending;
  for (const auto& job : *jobs) {
    if (!job.is_object() || !job.contains("State") || !job["State"].is_string()) {
      return detail::protocol_error(std::move(r), "GET /jobs?expand: a job without a State");
    }
    std::string state = label_value(job["State"].get<std::string>());
    std::string type = job.contains("Type") && job["Type"].is_string() ? label_value(job["Type"].get<std::string>())
                                                                       : "unknown";
    types.insert(type);
    ++counts[{lower(state), type}];
    if (state == "Pending" && job.contains("CreationTime") && job["CreationTime"].is_string()) {
      if (auto t = parse_orthanc_time(job["CreationTime"].get<std::string>())) {
        if (!oldest_pending || *t < *oldest_pending) oldest_pending = t;
      }
    }
  }
  // Every known state for every type seen, so a state's series does not
  // vanish when its last job leaves it; with no jobs at all, one series per
  // state without a job type (sum by (state) is always complete).
  if (types.empty()) types.insert("");
  for (const auto& type : types) {
    for (const auto& s : kStates) counts.try_emplace({lower(s), type}, 0);
  }
  for (const auto& [key, n] : counts) {
    Labels l = {{"state", key.first}};
    if (!key.second.empty()) l.emplace_back("job_type", key.second);
    r.add("pacs_queue_items", "Items in the queue by state.", n, std::move(l));
  }
  double age = 0;
  if (oldest_pending) {
    double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    age = std::max(0.0, now - *oldest_pending);
  }
  r.add("pacs_queue_oldest_item_age_seconds", "Age of the oldest waiting item (0 when the queue is empty).", age);
  return r;
}

// 2. Archive contents.
ProbeResult orthanc_statistics_answer(ProbeResult r, const http::Response& h) {
  detail::set_status_code(r, h);  // the last answer's status replaces the jobs answer's
  if (!h.ok) return detail::fail_from(std::move(r), h);
  auto stats = detail::parse_json(h, "GET /statistics", r);
  if (!stats) return r;
  static const std::vector<std::pair<const char*, const char*>> fields = {
      {"CountStudies", "pacs_archive_studies"},
      {"CountSeries", "pacs_archive_series"},
      {"CountInstances", "pacs_archive_instances"},
      {"TotalDiskSize", "pacs_archive_stored_bytes"},
  };
  static const std::map<std::string, std::string> help = {
      {"pacs_archive_studies", "Studies stored in the archive."},
      {"pacs_archive_series", "Series stored in the archive."},
      {"pacs_archive_instances", "Instances stored in the archive."},
      {"pacs_archive_stored_bytes", "Bytes the archive uses on disk."},
  };
  for (const auto& [field, metric] : fields) {
    if (!stats->is_object() || !stats->contains(field)) {
      return detail::protocol_error(std::move(r), std::string("GET /statistics: no ") + field);
    }
    bool ok = true;
    double v = as_number((*stats)[field], ok);
    if (!ok) return detail::protocol_error(std::move(r), std::string("GET /statistics: ") + field + " is not a number");
    r.add(metric, help.at(metric), v);
  }
  return r;
}

}  // namespace pacs::queue
