// Ingest counters for type = "orthanc": follows Orthanc's change log
// (GET /changes?since=N&limit=M) incrementally and counts NewInstance and
// NewStudy changes into pacs_archive_received_{instances,studies}_total.
//
// Only two fields of a change are read: ChangeType and Seq. Resource IDs,
// paths, dates and anything about patients are never looked at (the change
// log carries none of their tags anyway).
//
// The counters and the sequence number of the last change counted live in
// a small state file (JSON, replaced atomically after every run that moved
// them), so they survive a restart of the agent without counting a change
// twice or missing one. See README.md "Ingest counters" for the rules on the
// first run, a cleared log and a replaced Orthanc database.
//
// Thread-safety: one ChangeFollower per state file per process
// (for_state_file), shared by the scheduled probe instance and on-demand
// /probe instances of the target and across reloads; every method may be
// called from any thread (one follow at a time, the others wait for it
// until their deadline).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "probes/lib/http/http_client.h"
#include "probes/timed_lock.h"

namespace pacs::queue {

struct ChangeState {
  std::string url;                    // the Orthanc the sequence numbers belong to
  std::optional<std::int64_t> last_seq;  // nullopt: start at the current end of the log
  std::uint64_t instances = 0;        // NewInstance changes counted
  std::uint64_t studies = 0;          // NewStudy changes counted
  std::uint64_t resets = 0;           // times the log went backwards (replaced database)
};

// State file text <-> state. parse_change_state returns nullopt and sets
// `error` for anything that is not a state file this version wrote.
std::string change_state_json(const ChangeState& s);
std::optional<ChangeState> parse_change_state(const std::string& text, std::string& error);
// Writes `text` to `path` atomically (temp file in the same folder, fsync,
// rename, fsync of the folder). Returns 0 or an errno value.
int write_file_atomically(const std::string& path, const std::string& text);

// One page of GET /changes applied to `s` (whose last_seq is set). Returns
// false with `error` when the page is not the expected shape. `done` is
// Orthanc's "Done"; `went_back` is set when the log's end is below our
// cursor (its database was replaced): then s.last_seq is moved to that end
// and nothing is counted.
bool apply_changes_page(ChangeState& s, const nlohmann::json& page, bool& done, bool& went_back, std::string& error);

class ChangeFollower {
 public:
  // Changes per request, requests per run at most (a bigger backlog, e.g.
  // after the agent was down on a busy archive, is caught up over the next
  // runs). Tests make them small.
  static constexpr int kPageSize = 1000;
  static constexpr int kMaxPages = 50;
  explicit ChangeFollower(std::string state_file, int page_size = kPageSize, int max_pages = kMaxPages)
      : path_(std::move(state_file)), page_size_(page_size), max_pages_(max_pages) {}
  // The process-wide follower of a state file (created on first use).
  static std::shared_ptr<ChangeFollower> for_state_file(const std::string& path);

  const std::string& state_file() const { return path_; }

  // `fetch`: read new changes from `url` (else only export the counters,
  // e.g. after an earlier request of the run failed). Adds the counters to
  // `r` and, on a failure of its own, turns `r` into that failure (keeping
  // its samples).
  void follow(http::Client& http, const std::string& url, const ProbeContext& ctx, ProbeResult& r, bool fetch);

 private:
  void load(const std::string& url, const ProbeContext& ctx);
  bool save(ProbeResult& r);
  void add_samples(ProbeResult& r) const;

  const std::string path_;
  const int page_size_, max_pages_;
  TimedLock mu_;
  bool loaded_ = false;
  ChangeState state_;
  std::string saved_;  // text of the file as last written or read
};

// The default state file of a target.
std::string default_state_file(const std::string& target);

}  // namespace pacs::queue
