// The queue probe kind: PACS spool folders and job queues, one check per
// `type` (directory, orthanc, dcm4chee, http_json). The probe classes are
// public for tests and benchmarks; the agent sees only the Kind descriptor.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "probes/kind.h"
#include "probes/lib/http/http_client.h"

namespace pacs::queue {

const Kind& kind();

// Parses one [[queue]] table into its one ProbeSpec.
std::vector<ProbeSpec> parse_target(const ConfigTable& table, const TargetCommon& common, const ConfigTable& agent);

// ---- type = "directory": a spool / inbox / outbox folder -------------------

struct SpoolOptions {
  std::string path;
  std::string pattern;        // fnmatch(3) glob on the file name; empty = every file
  bool recursive = false;
  int max_depth = 16;         // levels of subfolders below `path` (only when recursive)
  bool include_hidden = false;  // names starting with '.' (files and folders)
};

struct SpoolScan {
  std::uint64_t items = 0;
  std::uint64_t bytes = 0;
  bool has_oldest = false;
  std::int64_t oldest_mtime_ns = 0;  // Unix time of the oldest item's mtime
  bool partial = false;       // stopped at the deadline or on shutdown
  int err = 0;                // first error (errno), 0 if none
  bool top_failed = false;    // the spool folder itself could not be read
  std::uint64_t unreadable = 0;  // entries below it that could not be read
  // No names: spool entries are often named after patients.
};

// Counts regular files (symlinks are not followed). Thread-safe: no state.
// Blocks as long as the file system does (see scan_spool_guarded).
SpoolScan scan_spool(const SpoolOptions& opts, const ProbeContext& ctx);

// scan_spool on a helper thread, waited for until ctx.deadline + `grace`
// (or shutdown + `grace`). A scan still running then is left to finish on
// its own and its path is marked stuck: until it returns, further calls for
// the path return still_stuck at once. Thread-safe.
struct GuardedScan {
  enum Outcome { finished, timed_out, still_stuck } outcome = finished;
  SpoolScan scan;  // when finished
};
GuardedScan scan_spool_guarded(const SpoolOptions& opts, const ProbeContext& ctx,
                               Duration grace = std::chrono::milliseconds(250));
// True while an abandoned scan of `path` has not returned.
bool spool_scan_stuck(const std::string& path);

// Thread-safety: one run at a time per instance (see Probe).
class SpoolDirectoryProbe : public Probe {
 public:
  explicit SpoolDirectoryProbe(SpoolOptions opts) : opts_(std::move(opts)) {}
  ProbeResult run(const ProbeContext& ctx) override;

 private:
  SpoolOptions opts_;
};

// ---- type = "orthanc": jobs engine + /statistics ---------------------------

class ChangeFollower;  // orthanc_changes.h

class OrthancJobsProbe : public Probe {
 public:
  // `changes`: the ingest counters' follower of this target (null: no
  // ingest counters).
  OrthancJobsProbe(std::string base_url, http::Settings http, std::shared_ptr<ChangeFollower> changes = nullptr)
      : url_(std::move(base_url)), http_(std::move(http)), changes_(std::move(changes)) {}
  ProbeResult run(const ProbeContext& ctx) override;

 private:
  ProbeResult jobs_and_statistics(http::Client& http, const ProbeContext& ctx);
  std::string url_;
  http::Settings http_;
  std::shared_ptr<ChangeFollower> changes_;
};

// ---- type = "dcm4chee": task counts per queue and status -------------------

class Dcm4cheeQueuesProbe : public Probe {
 public:
  // The statuses asked for, as the dcm4chee-arc REST API spells them.
  static const std::vector<std::string>& statuses();
  Dcm4cheeQueuesProbe(std::string base_url, std::vector<std::string> queues, http::Settings http)
      : url_(std::move(base_url)), queues_(std::move(queues)), http_(std::move(http)) {}
  ProbeResult run(const ProbeContext& ctx) override;

 private:
  std::string url_;
  std::vector<std::string> queues_;
  http::Settings http_;
};

// ---- type = "http_json": JSON pointers -> gauges ---------------------------

struct JsonValueSpec {
  std::string name;     // label value of `name`
  std::string pointer;  // RFC 6901 JSON pointer, e.g. "/queues/incoming/depth"
};

class HttpJsonProbe : public Probe {
 public:
  HttpJsonProbe(std::string url, std::vector<JsonValueSpec> values, http::Settings http)
      : url_(std::move(url)), values_(std::move(values)), http_(std::move(http)) {}
  ProbeResult run(const ProbeContext& ctx) override;

 private:
  std::string url_;
  std::vector<JsonValueSpec> values_;
  http::Settings http_;
};

// What the HTTP probes make of an answer (no I/O: for tests and fuzzing).
// `r` carries what earlier requests of the same run gathered.
ProbeResult orthanc_jobs_answer(ProbeResult r, const http::Response& jobs);
ProbeResult orthanc_statistics_answer(ProbeResult r, const http::Response& statistics);
ProbeResult http_json_answer(const http::Response& h, const std::string& url, const std::vector<JsonValueSpec>& values);

const std::vector<Reason>& directory_reasons();
const std::vector<Reason>& http_reasons();

}  // namespace pacs::queue
