#include "probes/config_table.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <sstream>

#include <toml.hpp>

namespace pacs {

namespace {
// nullopt when malformed; `too_long` set when well-formed but over kMaxDuration.
std::optional<Duration> parse_duration_checked(std::string_view s, bool& too_long) {
  too_long = false;
  if (s.empty()) return std::nullopt;
  // Each number is capped, and so is the sum: "120000d" would overflow the
  // nanosecond clocks the scheduler adds it to (a hot loop, not an error).
  std::int64_t total_ms = 0;
  size_t i = 0;
  while (i < s.size()) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
    std::int64_t n = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      n = n * 10 + (s[i] - '0');
      if (n > 1'000'000'000) {
        too_long = true;
        return std::nullopt;
      }
      ++i;
    }
    size_t u = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i]))) ++i;
    std::string_view unit = s.substr(u, i - u);
    std::int64_t mult;
    if (unit == "ms") mult = 1;
    else if (unit == "s") mult = 1000;
    else if (unit == "m") mult = 60'000;
    else if (unit == "h") mult = 3'600'000;
    else if (unit == "d") mult = 86'400'000;
    else return std::nullopt;
    if (!too_long) total_ms += n * mult;  // keep parsing: a later bad unit is "malformed"
    if (total_ms > kMaxDuration.count()) too_long = true;
  }
  if (too_long) return std::nullopt;
  return Duration(total_ms);
}
}  // namespace

std::optional<Duration> parse_duration(std::string_view s) {
  bool too_long;
  return parse_duration_checked(s, too_long);
}

std::string format_duration(Duration d) {
  auto ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  auto take = [&](std::int64_t unit, const char* name) {
    if (ms >= unit) {
      out += std::to_string(ms / unit) + name;
      ms %= unit;
    }
  };
  take(86'400'000, "d");
  take(3'600'000, "h");
  take(60'000, "m");
  take(1000, "s");
  take(1, "ms");
  return out;
}

std::string config_location(const toml::value& v) {
  auto loc = v.location();
  return loc.file_name() + ":" + std::to_string(loc.line());
}

ConfigTable::ConfigTable(const toml::value& table, std::string path)
    : state_(std::make_shared<State>(State{&table, std::move(path), {}, {}})) {}

ConfigTable ConfigTable::empty(std::string path) {
  static const toml::value none = toml::table{};
  return ConfigTable(none, std::move(path));
}

int ConfigTable::line() const { return static_cast<int>(state_->value->location().line()); }

const toml::value* ConfigTable::find(std::string_view key) const {
  const auto& t = state_->value->as_table();
  auto it = t.find(std::string(key));
  if (it == t.end()) return nullptr;
  state_->used.insert(std::string(key));
  return &it->second;
}

bool ConfigTable::has(std::string_view key) const {
  return state_->value->as_table().count(std::string(key)) > 0;
}

std::vector<std::string> ConfigTable::keys() const {
  std::vector<std::pair<std::uint_least32_t, std::string>> ks;
  for (const auto& [k, v] : state_->value->as_table()) ks.emplace_back(v.location().line(), k);
  std::sort(ks.begin(), ks.end());
  std::vector<std::string> out;
  for (auto& [l, k] : ks) out.push_back(std::move(k));
  return out;
}

void ConfigTable::mark_used(std::string_view key) const { state_->used.insert(std::string(key)); }

std::string ConfigTable::where(const toml::value& v) const { return config_location(v); }

void ConfigTable::fail(std::string_view key, std::string_view message) const {
  const auto& t = state_->value->as_table();
  auto it = t.find(std::string(key));
  const toml::value& at = it != t.end() ? it->second : *state_->value;
  throw ConfigError(where(at) + ": " + state_->path + "." + std::string(key) + ": " + std::string(message));
}

void ConfigTable::fail_table(std::string_view message) const {
  throw ConfigError(where(*state_->value) + ": " + state_->path + ": " + std::string(message));
}

std::string ConfigTable::string(std::string_view key) const {
  auto s = optional_string(key);
  if (!s) fail_table("missing required key \"" + std::string(key) + "\"");
  return *s;
}

std::string ConfigTable::string(std::string_view key, std::string_view def) const {
  auto s = optional_string(key);
  return s ? *s : std::string(def);
}

std::optional<std::string> ConfigTable::optional_string(std::string_view key) const {
  const toml::value* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_string()) fail(key, "must be a string");
  return v->as_string().str;
}

std::int64_t ConfigTable::integer(std::string_view key, std::int64_t def, std::int64_t min,
                                  std::int64_t max) const {
  const toml::value* v = find(key);
  if (!v) return def;
  if (!v->is_integer()) fail(key, "must be an integer");
  auto n = v->as_integer();
  if (n < min || n > max) fail(key, "must be " + std::to_string(min) + ".." + std::to_string(max));
  return n;
}

std::int64_t ConfigTable::integer(std::string_view key, std::int64_t min, std::int64_t max) const {
  if (!has(key)) fail_table("missing required key \"" + std::string(key) + "\"");
  return integer(key, 0, min, max);
}

double ConfigTable::number(std::string_view key, double def) const {
  const toml::value* v = find(key);
  if (!v) return def;
  if (v->is_integer()) return static_cast<double>(v->as_integer());
  if (v->is_floating()) return v->as_floating();
  fail(key, "must be a number");
}

bool ConfigTable::boolean(std::string_view key, bool def) const {
  const toml::value* v = find(key);
  if (!v) return def;
  if (!v->is_boolean()) fail(key, "must be true or false");
  return v->as_boolean();
}

Duration ConfigTable::duration(std::string_view key, Duration def) const {
  const toml::value* v = find(key);
  if (!v) return def;
  if (!v->is_string()) fail(key, "must be a duration string such as \"15s\" or \"2m\"");
  bool too_long;
  auto d = parse_duration_checked(v->as_string().str, too_long);
  if (too_long) fail(key, "duration \"" + v->as_string().str + "\" is too long (at most " + format_duration(kMaxDuration) + ")");
  if (!d) fail(key, "invalid duration \"" + v->as_string().str + "\" (use e.g. \"500ms\", \"15s\", \"2m\", \"1h\")");
  if (d->count() <= 0) fail(key, "must be greater than 0");
  return *d;
}

std::vector<std::string> ConfigTable::string_array(std::string_view key, std::vector<std::string> def) const {
  const toml::value* v = find(key);
  if (!v) return def;
  if (!v->is_array()) fail(key, "must be an array of strings");
  std::vector<std::string> out;
  for (const auto& e : v->as_array()) {
    if (!e.is_string()) fail(key, "must be an array of strings");
    out.push_back(e.as_string().str);
  }
  return out;
}

std::optional<ConfigTable> ConfigTable::table(std::string_view key) const {
  const toml::value* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_table()) fail(key, "must be a table");
  auto child = std::make_shared<State>(State{v, state_->path + "." + std::string(key), {}, {}});
  state_->children.push_back(child);
  return ConfigTable(child);
}

std::vector<ConfigTable> ConfigTable::table_array(std::string_view key) const {
  const toml::value* v = find(key);
  std::vector<ConfigTable> out;
  if (!v) return out;
  if (!v->is_array()) fail(key, "must be an array of tables");
  size_t i = 0;
  for (const auto& e : v->as_array()) {
    if (!e.is_table()) fail(key, "must be an array of tables");
    auto child = std::make_shared<State>(
        State{&e, state_->path + "." + std::string(key) + "[" + std::to_string(i++) + "]", {}, {}});
    state_->children.push_back(child);
    out.push_back(ConfigTable(child));
  }
  return out;
}

void ConfigTable::check_unknown_keys() const {
  for (const auto& k : keys()) {
    if (!state_->used.count(k)) fail(k, "unknown key");
  }
  for (const auto& c : state_->children) ConfigTable(c).check_unknown_keys();
}

namespace {
void canonical_into(const toml::value& v, std::ostringstream& os) {
  if (v.is_table()) {
    std::map<std::string, const toml::value*> sorted;
    for (const auto& [k, e] : v.as_table()) sorted[k] = &e;
    os << '{';
    for (const auto& [k, e] : sorted) {
      os << std::quoted(k) << '=';
      canonical_into(*e, os);
      os << ';';
    }
    os << '}';
  } else if (v.is_array()) {
    os << '[';
    for (const auto& e : v.as_array()) {
      canonical_into(e, os);
      os << ',';
    }
    os << ']';
  } else if (v.is_string()) {
    os << std::quoted(v.as_string().str);
  } else {
    os << toml::format(v);
  }
}
}  // namespace

std::string ConfigTable::canonical() const {
  std::ostringstream os;
  canonical_into(*state_->value, os);
  return os.str();
}

}  // namespace pacs
