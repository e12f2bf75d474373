#include "agent/figures.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace pacs {

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string printf_str(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

std::string format_number(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf");
  if (v == std::floor(v) && std::fabs(v) < 1e15) return printf_str("%.0f", v);
  return printf_str("%.3g", v);
}

std::string format_share(double part, double whole) {
  return printf_str("%.1f%%", part / whole * 100);
}

// "pacs_dicom_find_first_response_seconds" (kind dicom) -> "find first response".
std::string fallback_label(std::string_view kind, const std::string& name) {
  std::string_view n = name;
  if (n.substr(0, 5) == "pacs_") n.remove_prefix(5);
  if (!kind.empty() && n.size() > kind.size() && n.substr(0, kind.size()) == kind && n[kind.size()] == '_') {
    n.remove_prefix(kind.size() + 1);
  }
  for (std::string_view unit : {"_timestamp_seconds", "_seconds", "_bytes", "_total"}) {
    if (ends_with(n, unit)) {
      n.remove_suffix(unit.size());
      break;
    }
  }
  std::string out(n);
  for (auto& c : out)
    if (c == '_') c = ' ';
  return out;
}

// A kind without figures: one figure per metric, its samples' label values
// before their values ("phase duration: connect 0.4 ms, dimse 2.1 ms").
std::vector<FigureText> fallback_figures(std::string_view kind, const std::vector<Sample>& samples,
                                         std::chrono::system_clock::time_point now) {
  std::vector<FigureText> out;
  for (const auto& s : samples) {
    auto it = std::find_if(out.begin(), out.end(), [&](const FigureText& f) { return f.metric == s.name; });
    if (it == out.end()) {
      out.push_back({s.name, fallback_label(kind, s.name) + (s.labels.empty() ? "" : ":"), {}});
      it = out.end() - 1;
    }
    std::string v;
    for (const auto& [k, lv] : s.labels) v += lv + " ";
    it->value += (it->value.empty() ? "" : ", ") + v + format_metric_value(s.name, s.value, now);
  }
  return out;
}

}  // namespace

std::string format_bytes(double v) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (!std::isfinite(v)) return format_number(v);
  int u = 0;
  double x = v;
  while (std::fabs(x) >= 1024 && u < 5) {
    x /= 1024;
    ++u;
  }
  if (u == 0) return format_number(x) + " B";
  return printf_str(std::fabs(x) < 10 ? "%.2f" : "%.1f", x) + " " + units[u];
}

std::string format_duration(double s) {
  if (!std::isfinite(s)) return format_number(s);
  double a = std::fabs(s);
  if (a == 0) return "0 s";
  if (a < 0.01) return printf_str("%.2f ms", s * 1000);
  if (a < 1) return printf_str("%.0f ms", s * 1000);
  if (a < 120) return printf_str("%.1f s", s);
  if (a < 2 * 3600) return printf_str("%.0f min", s / 60);
  if (a < 48 * 3600) return printf_str("%.1f h", s / 3600);
  return printf_str("%.1f days", s / 86400);
}

std::string format_metric_value(std::string_view metric, double v, std::chrono::system_clock::time_point now) {
  if (ends_with(metric, "_timestamp_seconds")) {
    double days = (v - std::chrono::duration<double>(now.time_since_epoch()).count()) / 86400;
    std::string d = printf_str(std::fabs(days) < 10 ? "%.1f" : "%.0f", std::fabs(days));
    return days >= 0 ? "in " + d + " days" : d + " days ago";
  }
  if (ends_with(metric, "_seconds")) return format_duration(v);
  if (ends_with(metric, "_bytes")) return format_bytes(v);
  return format_number(v);
}

std::vector<FigureText> make_figures(const Kind* kind, std::string_view check, const std::vector<Sample>& samples,
                                     std::chrono::system_clock::time_point now) {
  std::vector<FigureText> out;
  if (!kind || kind->figures.empty()) return fallback_figures(kind ? kind->name : std::string_view{}, samples, now);
  for (const Figure& f : kind->figures) {
    if (!f.check.empty() && f.check != check) continue;
    double sum = 0, whole = 0;
    bool found = false, found_whole = false;
    std::vector<std::pair<std::string, double>> split;  // label value -> sum, in order of appearance
    for (const auto& s : samples) {
      if (s.name == f.metric) {
        found = true;
        sum += s.value;
        if (!f.split_by.empty()) {
          std::string key;
          for (const auto& [k, v] : s.labels)
            if (k == f.split_by) key = v;
          auto it = std::find_if(split.begin(), split.end(), [&](const auto& p) { return p.first == key; });
          if (it == split.end()) split.emplace_back(key, s.value);
          else it->second += s.value;
        }
      } else if (!f.share_of.empty() && s.name == f.share_of) {
        found_whole = true;
        whole += s.value;
      }
    }
    if (!found) continue;
    FigureText t{std::string(f.metric), std::string(f.label), {}};
    if (f.flag) {
      if (sum != 0) out.push_back(std::move(t));
      continue;
    }
    if (!f.share_of.empty() && (!found_whole || whole == 0)) continue;
    if (!f.split_by.empty()) {
      for (const auto& [k, v] : split) {
        if (v == 0) continue;
        t.value += (t.value.empty() ? "" : ", ") + k + " " + format_metric_value(f.metric, v, now);
      }
      if (t.value.empty()) t.value = format_metric_value(f.metric, 0, now);
    } else {
      t.value = format_metric_value(f.metric, sum, now);
      if (!f.share_of.empty()) t.value += " (" + format_share(sum, whole) + ")";
    }
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace pacs
