#include "agent/status_page.h"

#include <algorithm>
#include <ctime>
#include <sstream>
#include <tuple>

namespace pacs {

namespace {

std::string fmt_time(std::chrono::system_clock::time_point t) {
  auto tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

// Probe runs take from microseconds (statvfs) to seconds (a timeout): show
// milliseconds below one second so a fast run does not read "0.000 s".
std::string fmt_seconds(double s) {
  std::ostringstream os;
  os << std::fixed;
  if (s < 1) {
    os.precision(s < 0.01 ? 3 : 1);
    os << s * 1000 << " ms";
  } else {
    os.precision(2);
    os << s << " s";
  }
  return os.str();
}

}  // namespace

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render_status_page(const StatusSnapshot& s) {
  std::ostringstream h;
  h << "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>pacs-agent</title>"
    << "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
    << "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
    << ".ok{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}.pending{color:#777}"
    << ".h span{display:inline-block;width:.7em;height:1em;margin-right:1px}.h .s{background:#2da44e}.h .f{background:#cf222e}"
    << "small{color:#555}</style></head><body>"
    << "<h1>pacs-agent</h1><p>Version " << html_escape(s.version) << " &middot; config <code>"
    << html_escape(s.config_source) << "</code> &middot; " << s.targets << " targets, " << s.probes.size()
    << " probes</p>"
    << "<p><a href=\"/metrics\">Metrics</a> &middot; <a href=\"/-/healthy\">Health</a> &middot; "
    << "<a href=\"/-/ready\">Readiness</a></p>"
    << "<h2>Probes</h2><table><tr><th>Target</th><th>Probe</th><th>Status</th><th>Last run</th><th>Duration</th>"
    << "<th>Reason</th><th>Message</th><th>Recent (newest left)</th><th>Runs / failures / skipped</th><th>Try</th></tr>";
  for (const auto& st : s.probes) {
    h << "<tr><td>" << html_escape(st.target) << "</td><td>" << html_escape(st.probe) << "</td>";
    if (!st.has_run) {
      h << "<td class=\"pending\">pending</td><td></td><td></td><td></td><td></td>";
    } else {
      h << "<td class=\"" << (st.last.success ? "ok\">OK" : "fail\">FAIL") << "</td><td>" << fmt_time(st.last.end)
        << "</td><td>" << fmt_seconds(st.last.duration_seconds) << "</td><td>"
        << (st.last.success ? "" : html_escape(to_string(st.last.reason))) << "</td><td>"
        << html_escape(st.last.message) << "</td>";
    }
    h << "<td class=\"h\">";
    for (const auto& r : st.recent) {
      h << "<span class=\"" << (r.success ? "s" : "f") << "\" title=\"" << fmt_time(r.end) << " "
        << (r.success ? "ok" : html_escape(to_string(r.reason))) << "\"></span>";
    }
    h << "</td><td>" << st.runs << " / " << st.failures << " / " << st.skipped << "</td>"
      << "<td><a href=\"/probe?target=" << html_escape(st.target) << "&amp;check=" << html_escape(st.check)
      << "\">probe now</a></td></tr>";
  }
  h << "</table><h2>Recent failures</h2><table><tr><th>Time</th><th>Target</th><th>Probe</th><th>Reason</th>"
       "<th>Message</th></tr>";
  std::vector<std::tuple<std::chrono::system_clock::time_point, const ProbeStatus*, const RunRecord*>> fails;
  for (const auto& st : s.probes)
    for (const auto& r : st.failures_recent) fails.emplace_back(r.end, &st, &r);
  std::sort(fails.begin(), fails.end(), [](const auto& a, const auto& b) { return std::get<0>(a) > std::get<0>(b); });
  if (fails.size() > 50) fails.resize(50);
  for (const auto& [t, st, r] : fails) {
    h << "<tr><td>" << fmt_time(t) << "</td><td>" << html_escape(st->target) << "</td><td>" << html_escape(st->probe)
      << "</td><td>" << html_escape(to_string(r->reason)) << "</td><td>" << html_escape(r->message) << "</td></tr>";
  }
  if (fails.empty()) h << "<tr><td colspan=\"5\"><small>none</small></td></tr>";
  h << "</table></body></html>\n";
  return h.str();
}

}  // namespace pacs
