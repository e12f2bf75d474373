// Typed, location-aware reading of one TOML table of the agent's config.
//
// Every error names the file, the line and the key path, e.g.
//   pacs-agent.toml:12: dicom[1].port: must be 1..65535
// Keys that were never read are reported by check_unknown_keys() (called by
// the config loader after a section parser returns), so a typo in a key is
// an error and never a silently ignored setting.
//
// Thread-safety: none; a ConfigTable lives only while one file is parsed.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "probes/probe.h"

// toml11's value type, declared rather than included: <toml.hpp> costs seconds of
// compile time in every file that includes it, and this header is included almost
// everywhere (through probes/kind.h) while only the config readers use the toml11
// API; they include <toml.hpp> themselves. The alias must equal toml11's own
// (toml/value.hpp); a mismatch is a redeclaration error in those files.
namespace toml {
struct discard_comments;
template <typename Comment, template <typename...> class Table, template <typename...> class Array>
class basic_value;
using value = basic_value<discard_comments, std::unordered_map, std::vector>;
}  // namespace toml

namespace pacs {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The longest duration any key may hold (a year): far beyond any sensible
// interval, far below what the nanosecond clocks can add without overflow.
inline constexpr Duration kMaxDuration = std::chrono::hours(24 * 366);

// "15s", "2m", "1h30m", "500ms", "1d". Returns nullopt when malformed or
// longer than kMaxDuration.
std::optional<Duration> parse_duration(std::string_view s);
std::string format_duration(Duration d);  // inverse, for docs and messages

class ConfigTable {
 public:
  // `path` is the key path used in messages ("agent", "dicom[0]").
  ConfigTable(const toml::value& table, std::string path);
  // A table with no keys (e.g. [agent] when the file has none).
  static ConfigTable empty(std::string path);

  const std::string& path() const { return state_->path; }
  int line() const;                          // line of the table itself
  bool has(std::string_view key) const;
  std::vector<std::string> keys() const;     // in file order; does not mark them read

  std::string string(std::string_view key) const;  // required
  std::string string(std::string_view key, std::string_view def) const;
  std::optional<std::string> optional_string(std::string_view key) const;
  std::int64_t integer(std::string_view key, std::int64_t def, std::int64_t min, std::int64_t max) const;
  std::int64_t integer(std::string_view key, std::int64_t min, std::int64_t max) const;  // required
  double number(std::string_view key, double def) const;  // integer or float
  bool boolean(std::string_view key, bool def) const;
  Duration duration(std::string_view key, Duration def) const;
  std::vector<std::string> string_array(std::string_view key, std::vector<std::string> def) const;
  // Nested table / array of tables. Their unknown keys are checked together
  // with this table's.
  std::optional<ConfigTable> table(std::string_view key) const;
  std::vector<ConfigTable> table_array(std::string_view key) const;

  // Marks a key as read without reading it (the loader uses this for keys
  // it handles itself).
  void mark_used(std::string_view key) const;

  [[noreturn]] void fail(std::string_view key, std::string_view message) const;  // at the key's line
  [[noreturn]] void fail_table(std::string_view message) const;                   // at the table's line

  // Throws ConfigError for the first key (in file order) nobody read, here
  // or in any nested table handed out by table()/table_array().
  void check_unknown_keys() const;

  // Canonical text of the whole table (sorted keys), for ProbeSpec::fingerprint.
  std::string canonical() const;

 private:
  struct State {
    const toml::value* value;
    std::string path;
    std::set<std::string, std::less<>> used;
    std::vector<std::shared_ptr<State>> children;
  };
  explicit ConfigTable(std::shared_ptr<State> s) : state_(std::move(s)) {}
  const toml::value* find(std::string_view key) const;
  std::string where(const toml::value& v) const;
  std::shared_ptr<State> state_;
};

std::string config_location(const toml::value& v);  // "file:line"

}  // namespace pacs
