// Structured one-line logging: `ts=... level=info msg="..." key=value ...`
// (logfmt, as Prometheus components write it) to a sink, stderr by default.
//
// Thread-safety: every method may be called from any thread; lines are
// written whole (one write per line under a mutex).
//
// PHI rule: callers pass counts, timings, configured names and reason codes
// only. Nothing read from a DICOM dataset or a PACS response body is logged.
#pragma once

#include <atomic>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace pacs {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

std::optional<LogLevel> parse_log_level(std::string_view s);
std::string_view to_string(LogLevel l) noexcept;

using LogField = std::pair<std::string_view, std::string_view>;

class Logger {
 public:
  using Sink = std::function<void(std::string_view line)>;

  explicit Logger(LogLevel level = LogLevel::info, Sink sink = {});

  void set_level(LogLevel l) { level_.store(l, std::memory_order_relaxed); }
  LogLevel level() const { return level_.load(std::memory_order_relaxed); }
  bool enabled(LogLevel l) const { return l >= level(); }

  void log(LogLevel l, std::string_view msg, std::initializer_list<LogField> fields = {});
  void debug(std::string_view msg, std::initializer_list<LogField> f = {}) { log(LogLevel::debug, msg, f); }
  void info(std::string_view msg, std::initializer_list<LogField> f = {}) { log(LogLevel::info, msg, f); }
  void warn(std::string_view msg, std::initializer_list<LogField> f = {}) { log(LogLevel::warn, msg, f); }
  void error(std::string_view msg, std::initializer_list<LogField> f = {}) { log(LogLevel::error, msg, f); }

  // Formats one logfmt line (without trailing newline); exposed for tests.
  static std::string format(std::string_view ts, LogLevel l, std::string_view msg,
                            std::initializer_list<LogField> fields);

 private:
  std::atomic<LogLevel> level_;
  Sink sink_;
  std::mutex mu_;
};

}  // namespace pacs
