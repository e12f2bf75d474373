// HTTP basic auth with bcrypt hashes, verified off the io thread.
//
// bcrypt is slow on purpose (cost 12: ~250 ms of CPU). Run on the single
// io thread it lets four wrong passwords a second stall every scrape, so:
// - a verdict already known is answered at once: verified credentials are
//   remembered (by SHA-256, never in clear) and so are recent failures,
//   briefly, so retrying a wrong password costs one bcrypt, not one each;
// - anything else is verified on a small pool of its own, with a bounded
//   queue (beyond it: `busy`, answered 503 at once);
// - an unknown user costs the same as a known one with a wrong password (a
//   bcrypt against a configured hash), so timing does not reveal user names.
//
// Thread-safety: every member may be called from any thread; `done`
// callbacks run on a pool thread. The destructor answers queued checks
// with `busy` and joins the pool.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "agent/worker_pool.h"

namespace pacs {

class BasicAuth {
 public:
  enum class Verdict { allow, deny, busy };
  static constexpr int kThreads = 2;
  static constexpr std::size_t kMaxQueued = 32;
  static constexpr std::chrono::seconds kFailureMemory{30};
  static constexpr std::size_t kMaxRemembered = 4096;

  // user -> bcrypt hash; empty: every request is allowed.
  explicit BasicAuth(std::map<std::string, std::string> users);
  ~BasicAuth();
  BasicAuth(const BasicAuth&) = delete;
  BasicAuth& operator=(const BasicAuth&) = delete;

  bool enabled() const { return !users_.empty(); }
  // The verdict when it needs no bcrypt (no auth configured, a malformed
  // header, remembered credentials); nullopt when verify() must run.
  std::optional<Verdict> quick(const std::string& authorization);
  // Runs bcrypt on the pool; `done` gets the verdict (on a pool thread, or
  // at once on this thread with `busy` when the queue is full).
  void verify(const std::string& authorization, std::function<void(Verdict)> done);

  // Answers queued checks with `busy` and joins the pool (also done by the
  // destructor). The server calls it before its connections go away.
  void stop() { pool_.stop(); }

  std::uint64_t bcrypt_runs() const { return bcrypt_runs_.load(); }

 private:
  struct Parsed {
    std::string user, pass, key;  // key: SHA-256 of user, password and hash
    const std::string* hash = nullptr;  // the user's hash, or a stand-in for unknown users
    bool known = false;
  };
  std::optional<Parsed> parse(const std::string& authorization) const;
  Verdict check(const Parsed& p);

  const std::map<std::string, std::string> users_;
  std::mutex mu_;
  std::set<std::string> verified_;
  std::map<std::string, std::chrono::steady_clock::time_point> failed_;  // key -> forget at
  std::atomic<std::uint64_t> bcrypt_runs_{0};
  WorkerPool pool_;
};

}  // namespace pacs
