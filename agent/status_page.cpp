#include "agent/status_page.h"

#include <algorithm>
#include <ctime>
#include <sstream>
#include <tuple>

#include "probes/registry.h"

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

// Plain CSS, no JavaScript. Below 720 px every table row becomes a card and
// each cell names its column, so the page reads on a phone without zooming.
constexpr const char* kStyle =
    "body{font-family:system-ui,sans-serif;margin:1em;line-height:1.35}"
    "table{border-collapse:collapse;width:100%}"
    "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top;overflow-wrap:break-word}"
    ".ok{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}.pending{color:#777}"
    ".h span{display:inline-block;width:.7em;height:1em;margin-right:1px}.h .s{background:#2da44e}"
    ".h .f{background:#cf222e}"
    ".fig{display:inline-block;margin-right:.9em}.fig b{font-weight:600}td.figs{min-width:14em;max-width:30em}"
    "pre{background:#f6f8fa;padding:.6em;white-space:pre-wrap;overflow-wrap:break-word;font-size:.9em}"
    "small,.meta{color:#555}"
    "@media (max-width:720px){"
    "table.cards thead{display:none}"
    "table.cards,table.cards tbody,table.cards tr,table.cards td{display:block}"
    "table.cards tr{border:1px solid #ccc;margin:0 0 .8em;padding:.3em}"
    "table.cards td{border:none;padding:.15em .3em}"
    "table.cards td[data-label]::before{content:attr(data-label) \": \";color:#555;font-size:.85em}"
    "table.cards td:empty{display:none}td.figs{max-width:none}}";

void head(std::ostringstream& h, std::string_view title) {
  h << "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
    << "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>" << html_escape(title)
    << "</title><style>" << kStyle << "</style></head><body>";
}

std::string target_link(const std::string& target) {
  return "<a href=\"/target?name=" + html_escape(url_escape(target)) + "\">" + html_escape(target) + "</a>";
}

std::string probe_link(const std::string& target, const std::string& check, bool debug, std::string_view text) {
  return "<a href=\"/probe?target=" + html_escape(url_escape(target)) + "&amp;check=" + html_escape(url_escape(check)) +
         (debug ? "&amp;debug=true" : "") + "\">" + std::string(text) + "</a>";
}

void figures_html(std::ostringstream& h, const FigureMap& figures, const std::string& probe,
                  const std::string& target) {
  auto it = figures.find({probe, target});
  if (it == figures.end()) return;
  for (const auto& f : it->second) {
    h << "<span class=\"fig\" data-metric=\"" << html_escape(f.metric) << "\">" << html_escape(f.label);
    if (!f.value.empty()) h << (f.label.empty() ? "" : " ") << "<b>" << html_escape(f.value) << "</b>";
    h << "</span>";
  }
}

void recent_html(std::ostringstream& h, const std::deque<RunRecord>& recent) {
  for (const auto& r : recent) {
    h << "<span class=\"" << (r.success ? "s" : "f") << "\" title=\"" << fmt_time(r.end) << " "
      << (r.success ? "ok" : html_escape(to_string(r.reason))) << "\"></span>";
  }
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

std::string url_escape(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

FigureMap figures_of(const std::map<std::pair<std::string, std::string>, std::vector<Sample>>& samples,
                     const std::vector<ProbeStatus>& probes, std::chrono::system_clock::time_point now) {
  FigureMap out;
  for (const auto& st : probes) {
    auto it = samples.find({st.probe, st.target});
    if (it == samples.end()) continue;
    out[{st.probe, st.target}] = make_figures(find_kind(st.kind), st.check, it->second, now);
  }
  return out;
}

std::string render_status_page(const StatusSnapshot& s) {
  std::ostringstream h;
  head(h, "pacs-agent");
  h << "<h1>pacs-agent</h1><p class=\"meta\">Version " << html_escape(s.version) << " &middot; config <code>"
    << html_escape(s.config_source) << "</code> &middot; " << s.targets << " targets, " << s.probes.size()
    << " probes</p>"
    << "<p><a href=\"/metrics\">Metrics</a> &middot; <a href=\"/-/healthy\">Health</a> &middot; "
    << "<a href=\"/-/ready\">Readiness</a></p>"
    << "<h2>Probes</h2><table class=\"cards probes\"><thead><tr><th>Target</th><th>Probe</th><th>Status</th>"
    << "<th>Figures</th><th>Last run</th><th>Duration</th><th>Reason</th><th>Message</th>"
    << "<th>Recent (newest left)</th><th>Runs / failures / skipped</th><th>Try</th></tr></thead><tbody>";
  for (const auto& st : s.probes) {
    h << "<tr data-probe=\"" << html_escape(st.probe) << "\" data-target=\"" << html_escape(st.target) << "\">"
      << "<td data-label=\"Target\">" << target_link(st.target) << "</td><td data-label=\"Probe\">"
      << html_escape(st.probe) << "</td>";
    if (!st.has_run) {
      h << "<td data-label=\"Status\" class=\"pending\">pending</td><td></td><td></td><td></td><td></td><td></td>";
    } else {
      h << "<td data-label=\"Status\" class=\"status " << (st.last.success ? "ok\">OK" : "fail\">FAIL") << "</td>"
        << "<td data-label=\"Figures\" class=\"figs\">";
      figures_html(h, s.figures, st.probe, st.target);
      h << "</td><td data-label=\"Last run\">" << fmt_time(st.last.end) << "</td><td data-label=\"Duration\">"
        << fmt_seconds(st.last.duration_seconds) << "</td><td data-label=\"Reason\">"
        << (st.last.success ? "" : html_escape(to_string(st.last.reason))) << "</td><td data-label=\"Message\">"
        << html_escape(st.last.message) << "</td>";
    }
    h << "<td data-label=\"Recent\" class=\"h\">";
    recent_html(h, st.recent);
    h << "</td><td data-label=\"Runs / failures / skipped\">" << st.runs << " / " << st.failures << " / "
      << st.skipped << "</td><td data-label=\"Try\">" << probe_link(st.target, st.check, false, "probe now")
      << "</td></tr>";
  }
  h << "</tbody></table><h2>Recent failures</h2><table class=\"cards failures\"><thead><tr><th>Time</th>"
       "<th>Target</th><th>Probe</th><th>Reason</th><th>Message</th></tr></thead><tbody>";
  std::vector<std::tuple<std::chrono::system_clock::time_point, const ProbeStatus*, const RunRecord*>> fails;
  for (const auto& st : s.probes)
    for (const auto& r : st.failures_recent) fails.emplace_back(r.end, &st, &r);
  std::sort(fails.begin(), fails.end(), [](const auto& a, const auto& b) { return std::get<0>(a) > std::get<0>(b); });
  if (fails.size() > 50) fails.resize(50);
  for (const auto& [t, st, r] : fails) {
    h << "<tr><td data-label=\"Time\">" << fmt_time(t) << "</td><td data-label=\"Target\">" << target_link(st->target)
      << "</td><td data-label=\"Probe\">" << html_escape(st->probe) << "</td><td data-label=\"Reason\">"
      << html_escape(to_string(r->reason)) << "</td><td data-label=\"Message\">" << html_escape(r->message)
      << "</td></tr>";
  }
  if (fails.empty()) h << "<tr><td colspan=\"5\"><small>none</small></td></tr>";
  h << "</tbody></table></body></html>\n";
  return h.str();
}

std::string render_target_page(const TargetSnapshot& s) {
  std::ostringstream h;
  head(h, s.name + " - pacs-agent");
  h << "<p><a href=\"/\">&larr; all probes</a></p><h1>Target <code>" << html_escape(s.name) << "</code></h1>"
    << "<p class=\"meta\">pacs-agent " << html_escape(s.version) << " &middot; page made " << fmt_time(s.now)
    << " &middot; transcripts show configured names, codes, counts and timings only</p>";
  for (const auto& st : s.probes) {
    const ProbeHistory* hist = nullptr;
    for (const auto& x : s.history)
      if (x.probe == st.probe) hist = &x;
    h << "<section class=\"check\" id=\"" << html_escape(st.probe) << "\"><h2>" << html_escape(st.probe) << " ";
    if (!st.has_run) h << "<span class=\"pending\">pending</span>";
    else h << "<span class=\"status " << (st.last.success ? "ok\">OK" : "fail\">FAIL") << "</span>";
    h << "</h2><p class=\"figs\">";
    figures_html(h, s.figures, st.probe, st.target);
    h << "</p><p class=\"meta\">every " << fmt_seconds(std::chrono::duration<double>(st.interval).count())
      << ", timeout " << fmt_seconds(std::chrono::duration<double>(st.timeout).count()) << " &middot; runs "
      << st.runs << ", failures " << st.failures << ", skipped " << st.skipped;
    if (st.last_success.time_since_epoch().count() != 0) h << " &middot; last success " << fmt_time(st.last_success);
    h << "</p><p>" << probe_link(st.target, st.check, false, "probe now") << " &middot; "
      << probe_link(st.target, st.check, true, "probe now with transcript") << "</p>";
    auto traced = [&](const char* title, const TracedRun& t) {
      h << "<h3>" << title << "</h3><p>" << fmt_time(t.run.end) << " &middot; " << fmt_seconds(t.run.seconds)
        << " &middot; "
        << (t.run.success ? "<span class=\"ok\">success</span>"
                          : "<span class=\"fail\">" + html_escape(to_string(t.run.reason)) + "</span>")
        << (t.run.message.empty() ? "" : " &middot; " + html_escape(t.run.message)) << "</p>";
      if (t.transcript) h << "<pre class=\"transcript\">" << html_escape(t.transcript->text()) << "</pre>";
    };
    if (hist && hist->last_failure) traced("Last failure", *hist->last_failure);
    bool last_is_failure = hist && hist->last_failure && hist->last_run &&
                           hist->last_failure->transcript == hist->last_run->transcript;
    if (hist && hist->last_run && !last_is_failure) traced("Last run", *hist->last_run);
    h << "<h3>Recent runs (newest first)</h3><table class=\"cards runs\"><thead><tr><th>Time</th><th>Result</th>"
         "<th>Duration</th><th>Reason</th><th>Message</th></tr></thead><tbody>";
    if (hist) {
      for (const auto& r : hist->runs) {
        h << "<tr><td data-label=\"Time\">" << fmt_time(r.end) << "</td><td data-label=\"Result\" class=\""
          << (r.success ? "ok\">OK" : "fail\">FAIL") << "</td><td data-label=\"Duration\">" << fmt_seconds(r.seconds)
          << "</td><td data-label=\"Reason\">" << (r.success ? "" : html_escape(to_string(r.reason)))
          << "</td><td data-label=\"Message\">" << html_escape(r.message) << "</td></tr>";
      }
    }
    if (!hist || hist->runs.empty()) h << "<tr><td colspan=\"5\"><small>no run yet</small></td></tr>";
    h << "</tbody></table></section>";
  }
  h << "</body></html>\n";
  return h.str();
}

}  // namespace pacs
