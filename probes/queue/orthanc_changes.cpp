#include "probes/queue/orthanc_changes.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "probes/log.h"
#include "probes/queue/http_probe_util.h"

namespace pacs::queue {

namespace {

constexpr int kFormat = 1;

constexpr const char* kInstancesHelp = "Instances Orthanc stored as new (NewInstance changes) since counting began.";
constexpr const char* kStudiesHelp = "Studies Orthanc created (NewStudy changes) since counting began.";
constexpr const char* kResetsHelp =
    "Times Orthanc's change log was found behind the last change counted (its database was replaced).";

std::string errno_text(int e) { return std::strerror(e); }

bool as_seq(const nlohmann::json& v, std::int64_t& out) {
  if (!v.is_number_integer()) return false;
  out = v.get<std::int64_t>();
  return out >= 0;
}

}  // namespace

std::string default_state_file(const std::string& target) {
  return "/var/lib/pacs-agent/" + target + ".orthanc-changes.json";
}

std::string change_state_json(const ChangeState& s) {
  nlohmann::json j = {
      {"format", kFormat},
      {"url", s.url},
      {"received_instances", s.instances},
      {"received_studies", s.studies},
      {"change_log_resets", s.resets},
  };
  j["last_seq"] = s.last_seq ? nlohmann::json(*s.last_seq) : nlohmann::json(nullptr);
  return j.dump(2) + "\n";
}

std::optional<ChangeState> parse_change_state(const std::string& text, std::string& error) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    error = "not valid JSON";
    return std::nullopt;
  }
  if (!j.contains("format") || j["format"] != kFormat) {
    error = "unknown format (want \"format\": 1)";
    return std::nullopt;
  }
  ChangeState s;
  auto count = [&](const char* key, std::uint64_t& out) {
    if (!j.contains(key) || !j[key].is_number_unsigned()) {
      error = std::string("\"") + key + "\" is not a non-negative integer";
      return false;
    }
    out = j[key].get<std::uint64_t>();
    return true;
  };
  if (!count("received_instances", s.instances) || !count("received_studies", s.studies) ||
      !count("change_log_resets", s.resets)) {
    return std::nullopt;
  }
  if (!j.contains("url") || !j["url"].is_string()) {
    error = "\"url\" is not a string";
    return std::nullopt;
  }
  s.url = j["url"].get<std::string>();
  if (!j.contains("last_seq")) {
    error = "no \"last_seq\"";
    return std::nullopt;
  }
  if (!j["last_seq"].is_null()) {
    std::int64_t seq = 0;
    if (!as_seq(j["last_seq"], seq)) {
      error = "\"last_seq\" is not a non-negative integer";
      return std::nullopt;
    }
    s.last_seq = seq;
  }
  return s;
}

int write_file_atomically(const std::string& path, const std::string& text) {
  std::string dir = ".";
  if (auto slash = path.rfind('/'); slash != std::string::npos) dir = slash == 0 ? "/" : path.substr(0, slash);
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return errno;
  size_t off = 0;
  int err = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    off += static_cast<size_t>(n);
  }
  if (!err && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && !err) err = errno;
  if (!err && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err) {
    ::unlink(tmp.c_str());
    return err;
  }
  // The rename itself must survive a power cut too.
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return 0;
}

bool apply_changes_page(ChangeState& s, const nlohmann::json& page, bool& done, bool& went_back,
                        std::string& error) {
  went_back = false;
  done = true;
  if (!page.is_object() || !page.contains("Changes") || !page["Changes"].is_array() || !page.contains("Done") ||
      !page["Done"].is_boolean() || !page.contains("Last")) {
    error = "expected {\"Changes\": [...], \"Done\": bool, \"Last\": number}";
    return false;
  }
  std::int64_t last = 0;
  if (!as_seq(page["Last"], last)) {
    error = "\"Last\" is not a non-negative integer";
    return false;
  }
  const std::int64_t since = s.last_seq.value_or(0);
  const auto& changes = page["Changes"];
  if (changes.empty()) {
    // Orthanc answers an empty page with the sequence number of its newest
    // change (0 for an empty log) as "Last". Below our cursor: the numbers
    // started again, i.e. a new database (a cleared log keeps counting on).
    if (last < since) {
      went_back = true;
      s.last_seq = last;
      ++s.resets;
    }
    return true;
  }
  std::uint64_t instances = 0, studies = 0;
  std::int64_t max_seq = since;
  for (const auto& c : changes) {
    std::int64_t seq = 0;
    if (!c.is_object() || !c.contains("Seq") || !as_seq(c["Seq"], seq) || !c.contains("ChangeType") ||
        !c["ChangeType"].is_string()) {
      error = "a change without Seq or ChangeType";
      return false;
    }
    if (seq <= since) continue;  // never count a change twice
    max_seq = std::max(max_seq, seq);
    const auto& type = c["ChangeType"].get_ref<const std::string&>();
    if (type == "NewInstance") ++instances;
    else if (type == "NewStudy") ++studies;
  }
  if (max_seq == since) {
    error = "changes at or below the requested sequence number";
    return false;
  }
  s.instances += instances;
  s.studies += studies;
  s.last_seq = max_seq;
  done = page["Done"].get<bool>();
  return true;
}

std::shared_ptr<ChangeFollower> ChangeFollower::for_state_file(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<ChangeFollower>> followers;
  std::lock_guard lk(mu);
  auto& w = followers[path];
  auto f = w.lock();
  if (!f) {
    f = std::make_shared<ChangeFollower>(path);
    w = f;
  }
  return f;
}

void ChangeFollower::load(const std::string& url, const ProbeContext& ctx) {
  if (!loaded_) {
    loaded_ = true;
    std::ifstream in(path_);
    if (!in) {
      int e = errno;
      if (ctx.log) {
        if (e == ENOENT) {
          ctx.log->info("orthanc ingest counters: no state file yet; counting starts at the current end of "
                        "Orthanc's change log",
                        {{"state_file", path_}});
        } else {
          ctx.log->warn("orthanc ingest counters: cannot read the state file; counters restart at 0 from the "
                        "current end of Orthanc's change log",
                        {{"state_file", path_}, {"error", errno_text(e)}});
        }
      }
    } else {
      std::stringstream ss;
      ss << in.rdbuf();
      std::string error;
      if (auto s = parse_change_state(ss.str(), error)) {
        state_ = *s;
        saved_ = ss.str();
      } else if (ctx.log) {
        ctx.log->warn("orthanc ingest counters: the state file is corrupt; counters restart at 0 from the current "
                      "end of Orthanc's change log",
                      {{"state_file", path_}, {"error", error}});
      }
    }
  }
  if (state_.url != url) {
    if (!state_.url.empty() && ctx.log) {
      ctx.log->warn("orthanc ingest counters: the state file belongs to another Orthanc URL; following this one "
                    "from the current end of its change log (the counters go on)",
                    {{"state_file", path_}, {"url", http::redact_url(url)}});
    }
    state_.url = url;
    state_.last_seq.reset();
  }
}

bool ChangeFollower::save(ProbeResult& r) {
  std::string text = change_state_json(state_);
  if (text == saved_) return true;
  if (int e = write_file_atomically(path_, text)) {
    if (r.success) {  // an earlier failure of the run stays its reason
      r.success = false;
      r.reason = Reason::io_error;
      r.message = "cannot write the ingest counter state file " + path_ + ": " + errno_text(e) +
                  " (after a restart the counters would count these changes again)";
    }
    return false;
  }
  saved_ = std::move(text);
  return true;
}

void ChangeFollower::add_samples(ProbeResult& r) const {
  r.add_counter("pacs_archive_received_instances_total", kInstancesHelp, static_cast<double>(state_.instances));
  r.add_counter("pacs_archive_received_studies_total", kStudiesHelp, static_cast<double>(state_.studies));
  r.add_counter("pacs_archive_change_log_resets_total", kResetsHelp, static_cast<double>(state_.resets));
}

void ChangeFollower::follow(http::Client& http, const std::string& url, const ProbeContext& ctx, ProbeResult& r,
                            bool fetch) {
  std::unique_lock lk(mu_, std::defer_lock);
  if (!lk.try_lock_until(ctx.deadline)) {
    if (r.success) {
      r.success = false;
      r.reason = Reason::response_timeout;
      r.message = "another run of this target was still reading Orthanc's change log at the deadline";
    }
    return;
  }
  load(url, ctx);
  if (fetch) {
    if (!state_.last_seq) {
      // First run (or a new Orthanc): history is not new ingest. Start at
      // the newest change; count what comes after it.
      auto h = http.get(url + "/changes?last", ctx);
      detail::set_status_code(r, h);
      if (!h.ok) {
        r = detail::fail_from(std::move(r), h);
      } else if (auto page = detail::parse_json(h, "GET /changes?last", r)) {
        std::int64_t last = 0;
        if (!page->is_object() || !page->contains("Last") || !as_seq((*page)["Last"], last)) {
          r = detail::protocol_error(std::move(r), "GET /changes?last: no \"Last\" sequence number");
        } else {
          state_.last_seq = last;
          ctx.note("changes", "counting starts after change " + std::to_string(last));
        }
      }
    } else {
      // Orthanc answers with fewer changes when it caps the limit, and says
      // "Done": false while more are waiting.
      for (int page_no = 0; page_no < max_pages_; ++page_no) {
        std::string what = "GET /changes?since=" + std::to_string(*state_.last_seq);
        auto h = http.get(url + "/changes?since=" + std::to_string(*state_.last_seq) +
                              "&limit=" + std::to_string(page_size_),
                          ctx);
        detail::set_status_code(r, h);
        if (!h.ok) {
          r = detail::fail_from(std::move(r), h);
          break;
        }
        auto page = detail::parse_json(h, what, r);
        if (!page) break;
        bool done = true, went_back = false;
        std::string error;
        auto before = *state_.last_seq;
        if (!apply_changes_page(state_, *page, done, went_back, error)) {
          r = detail::protocol_error(std::move(r), what + ": " + error);
          break;
        }
        if (went_back) {
          if (ctx.log) {
            ctx.log->warn("orthanc ingest counters: Orthanc's change log is behind the last change counted (a "
                          "replaced or restored database); counting goes on from its current end",
                          {{"state_file", path_},
                           {"last_counted", std::to_string(before)},
                           {"log_end", std::to_string(*state_.last_seq)}});
          }
          ctx.note("changes", "log end " + std::to_string(*state_.last_seq) + " is behind " + std::to_string(before));
        }
        if (done) break;
      }
    }
    // Keep the counters' sequence numbers whatever happened above: what was
    // counted is written down with the number it was counted up to.
    if (state_.last_seq) save(r);
  }
  add_samples(r);
}

}  // namespace pacs::queue
