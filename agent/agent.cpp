#include "agent/agent.h"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <sstream>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <prometheus/text_serializer.h>

#include "agent/process_metrics.h"

namespace pacs {

namespace pm = prometheus;

namespace {
constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr int kOnDemandWorkers = 4;
constexpr int kOnDemandMaxInflight = 16;
constexpr double kScrapeTimeoutOffset = 0.5;  // seconds kept for the HTTP round trip, as blackbox does

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

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

pm::MetricFamily single_gauge(std::string name, std::string help, double v, std::vector<pm::ClientMetric::Label> labels = {}) {
  pm::ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = v;
  return {std::move(name), std::move(help), pm::MetricType::Gauge, {std::move(m)}};
}
}  // namespace

Agent::Agent(Logger& log, AgentOptions opts, std::shared_ptr<const Config> initial)
    : log_(log),
      opts_(std::move(opts)),
      config_(std::move(initial)),
      registry_(std::make_shared<pm::Registry>()),
      reload_ok_(pm::BuildGauge()
                     .Name("pacs_agent_config_last_reload_successful")
                     .Help("1 if the last configuration (re)load succeeded, 0 otherwise.")
                     .Register(*registry_)),
      reload_ts_(pm::BuildGauge()
                     .Name("pacs_agent_config_last_reload_success_timestamp_seconds")
                     .Help("Unix time of the last successful configuration (re)load.")
                     .Register(*registry_)),
      http_requests_(pm::BuildCounter()
                         .Name("pacs_agent_http_requests_total")
                         .Help("HTTP requests served, by handler and status code.")
                         .Register(*registry_)),
      on_demand_(kOnDemandWorkers) {
  pm::BuildGauge()
      .Name("pacs_agent_build_info")
      .Help("Build information of the running pacs-agent; always 1.")
      .Register(*registry_)
      .Add({{"version", PACS_AGENT_VERSION},
            {"dcmtk_version", OFFIS_DCMTK_VERSION_STRING},
            {"compiler", std::string("gcc-") + __VERSION__}})
      .Set(1);
  reload_ok_.Add({}).Set(1);
  reload_ts_.Add({}).Set(now_unix());
  for (const char* h : {"metrics", "probe", "status", "healthy", "ready", "reload"}) {
    http_requests_.Add({{"handler", h}, {"code", "200"}});  // the common series exist from the start
  }
  scheduler_ = std::make_unique<Scheduler>(store_, log_, config_->agent.max_concurrent_probes);
}

Agent::~Agent() { stop(); }

std::shared_ptr<const Config> Agent::config() const {
  std::lock_guard lock(config_mu_);
  return config_;
}

std::vector<std::string> Agent::listen_addresses() const {
  if (!opts_.listen_addresses.empty()) return opts_.listen_addresses;
  return config()->web.listen_addresses;
}

void Agent::start() {
  auto cfg = config();
  scheduler_->apply(cfg->probes);
  started_ = true;
  log_.info("probes scheduled", {{"config", cfg->source}, {"targets", std::to_string(cfg->targets.size())},
                                 {"probes", std::to_string(cfg->probes.size())}});
}

void Agent::stop() {
  if (scheduler_) scheduler_->stop();
  on_demand_stop_ = true;
  on_demand_.stop();
}

std::string Agent::reload() {
  std::lock_guard lock(reload_mu_);
  std::shared_ptr<const Config> next;
  try {
    next = opts_.config_file ? load_config_file(*opts_.config_file) : default_config();
  } catch (const std::exception& e) {
    reload_ok_.Add({}).Set(0);
    log_.error("config reload failed; keeping the running config", {{"err", e.what()}});
    return e.what();
  }
  auto prev = config();
  if (!(next->web == prev->web)) {
    log_.warn("[web] settings changed; they take effect at the next restart");
  }
  if (next->agent.max_concurrent_probes != prev->agent.max_concurrent_probes) {
    log_.warn("agent.max_concurrent_probes changed; it takes effect at the next restart");
  }
  scheduler_->apply(next->probes);
  {
    std::lock_guard cl(config_mu_);
    config_ = next;
  }
  reload_ok_.Add({}).Set(1);
  reload_ts_.Add({}).Set(now_unix());
  log_.info("config reloaded", {{"config", next->source}, {"targets", std::to_string(next->targets.size())},
                                {"probes", std::to_string(next->probes.size())}});
  return {};
}

void Agent::count_request(const std::string& handler, int code) {
  http_requests_.Add({{"handler", handler}, {"code", std::to_string(code)}}).Increment();
}

std::string Agent::metrics_text() const {
  auto fams = store_.Collect();
  for (auto& f : registry_->Collect()) fams.push_back(std::move(f));
  fams.push_back(single_gauge("pacs_agent_probes_running", "Probe runs in progress.",
                              scheduler_ ? scheduler_->running() : 0));
  for (auto& f : collect_process_metrics()) fams.push_back(std::move(f));
  std::ostringstream os;
  pm::TextSerializer().Serialize(os, fams);
  return os.str();
}

void Agent::handle(const HttpRequest& req, Respond respond) {
  const std::string& p = req.path;
  std::string handler = p == "/metrics" ? "metrics" : p == "/probe" ? "probe" : p == "/" ? "status"
                        : p == "/-/healthy" ? "healthy" : p == "/-/ready" ? "ready" : p == "/-/reload" ? "reload" : "other";
  Respond counted = [this, handler, respond](HttpReply r) {
    count_request(handler, r.status);
    respond(std::move(r));
  };
  bool get = req.method == "GET" || req.method == "HEAD";
  auto method_not_allowed = [&](const char* allow) {
    HttpReply r = HttpReply::text(405, std::string("method not allowed; use ") + allow + "\n");
    r.headers.push_back({"Allow", allow});
    counted(std::move(r));
  };

  if (handler == "reload") {
    if (req.method != "POST" && req.method != "PUT") return method_not_allowed("POST");
    // Reading and validating files is blocking work: keep it off the io thread.
    bool posted = on_demand_.post([this, counted] {
      std::string err = reload();
      counted(err.empty() ? HttpReply::text(200, "config reloaded\n") : HttpReply::text(500, "failed to reload config: " + err + "\n"));
    });
    if (!posted) counted(HttpReply::text(503, "shutting down\n"));
    return;
  }
  if (handler == "other") return counted(HttpReply::text(404, "not found\n"));
  if (!get) return method_not_allowed("GET");

  if (handler == "metrics") {
    HttpReply r;
    r.content_type = kMetricsContentType;
    r.body = metrics_text();
    r.compressible = true;
    return counted(std::move(r));
  }
  if (handler == "healthy") return counted(HttpReply::text(200, "Healthy\n"));
  if (handler == "ready") {
    return counted(started_ ? HttpReply::text(200, "Ready\n") : HttpReply::text(503, "Not ready\n"));
  }
  if (handler == "status") {
    HttpReply r;
    r.content_type = "text/html; charset=utf-8";
    r.body = status_page();
    r.compressible = true;
    return counted(std::move(r));
  }
  handle_probe(req, counted);
}

void Agent::handle_probe(const HttpRequest& req, Respond respond) {
  auto cfg = config();
  auto tq = req.query.find("target");
  if (tq == req.query.end() || tq->second.empty()) {
    return respond(HttpReply::text(400, "target parameter is missing\n"));
  }
  const Config::Target* target = cfg->find_target(tq->second);
  if (!target) {
    // Never echo arbitrary input back verbatim into logs/pages at length.
    return respond(HttpReply::text(400, "unknown target (only targets named in the config can be probed)\n"));
  }
  std::vector<const ProbeSpec*> specs = target->probes;
  if (auto cq = req.query.find("check"); cq != req.query.end() && !cq->second.empty()) {
    std::vector<const ProbeSpec*> picked;
    std::string valid;
    for (const ProbeSpec* s : specs) {
      std::string check = s->probe.substr(s->probe.find('_') + 1);
      valid += (valid.empty() ? "" : ", ") + check;
      if (check == cq->second || s->probe == cq->second) picked.push_back(s);
    }
    if (picked.empty()) return respond(HttpReply::text(400, "unknown check for this target; valid: " + valid + "\n"));
    specs = picked;
  }
  // Deadline: the scraper's timeout minus an offset for the HTTP round trip,
  // capped by each check's configured timeout.
  std::optional<double> scrape_timeout;
  if (auto h = req.header("x-prometheus-scrape-timeout-seconds"); !h.empty()) {
    try {
      double v = std::stod(h);
      if (v > 0) scrape_timeout = v > 2 * kScrapeTimeoutOffset ? v - kScrapeTimeoutOffset : v / 2;
    } catch (...) {
      return respond(HttpReply::text(400, "invalid X-Prometheus-Scrape-Timeout-Seconds header\n"));
    }
  }
  if (on_demand_inflight_.load() >= kOnDemandMaxInflight) {
    return respond(HttpReply::text(503, "too many concurrent /probe requests\n"));
  }
  ++on_demand_inflight_;
  auto start = Clock::now();
  bool posted = on_demand_.post([this, cfg, specs, scrape_timeout, start, respond] {
    std::vector<pm::MetricFamily> fams;
    pm::MetricFamily success{"pacs_probe_success", "1 if the check succeeded.", pm::MetricType::Gauge, {}};
    pm::MetricFamily duration{"pacs_probe_duration_seconds", "Wall time of the check.", pm::MetricType::Gauge, {}};
    pm::MetricFamily result_info{"pacs_probe_result_info", "Outcome of the check: reason=none on success; always 1.",
                                 pm::MetricType::Gauge, {}};
    std::vector<std::tuple<std::string, std::string, std::vector<Sample>>> samples;
    bool all_ok = true;
    double timeout_used = 0;
    for (const ProbeSpec* spec : specs) {
      auto check_start = Clock::now();
      double limit = std::chrono::duration<double>(spec->timeout).count();
      if (scrape_timeout) limit = std::min(limit, *scrape_timeout);
      timeout_used = std::max(timeout_used, limit);
      auto overall = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limit));
      ProbeContext ctx;
      ctx.deadline = std::min(overall, check_start + spec->timeout);
      ctx.stop = &on_demand_stop_;
      ctx.log = &log_;
      auto probe = spec->make();
      ProbeResult r = Scheduler::run_once(*probe, ctx, log_, *spec);
      double secs = std::chrono::duration<double>(Clock::now() - check_start).count();
      all_ok = all_ok && r.success;
      auto labels = std::vector<pm::ClientMetric::Label>{{"probe", spec->probe}, {"target", spec->target}};
      pm::ClientMetric m;
      m.label = labels;
      m.gauge.value = r.success ? 1 : 0;
      success.metric.push_back(m);
      m.gauge.value = secs;
      duration.metric.push_back(m);
      m.label.push_back({"reason", std::string(to_string(r.success ? Reason::none : r.reason))});
      m.gauge.value = 1;
      result_info.metric.push_back(m);
      samples.emplace_back(spec->probe, spec->target, std::move(r.samples));
      log_.debug("on-demand probe", {{"probe", spec->probe}, {"target", spec->target},
                                     {"success", r.success ? "1" : "0"}, {"reason", to_string(r.reason)}});
    }
    double total = std::chrono::duration<double>(Clock::now() - start).count();
    fams.push_back(single_gauge("probe_success", "1 if every requested check succeeded.", all_ok ? 1 : 0));
    fams.push_back(single_gauge("probe_duration_seconds", "Wall time of the whole /probe request.", total));
    fams.push_back(single_gauge("probe_timeout_seconds", "Deadline applied to each check.", timeout_used));
    fams.push_back(std::move(success));
    fams.push_back(std::move(duration));
    fams.push_back(std::move(result_info));
    for (const auto& [p, t, s] : samples) append_samples(fams, p, t, s);
    std::ostringstream os;
    pm::TextSerializer().Serialize(os, fams);
    HttpReply reply;
    reply.content_type = kMetricsContentType;
    reply.body = os.str();
    reply.compressible = true;
    --on_demand_inflight_;
    respond(std::move(reply));
  });
  if (!posted) {
    --on_demand_inflight_;
    respond(HttpReply::text(503, "shutting down\n"));
  }
}

std::string Agent::status_page() const {
  auto cfg = config();
  auto rows = store_.snapshot();
  std::ostringstream h;
  h << "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>pacs-agent</title>"
    << "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
    << "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
    << ".ok{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}.pending{color:#777}"
    << ".h span{display:inline-block;width:.7em;height:1em;margin-right:1px}.h .s{background:#2da44e}.h .f{background:#cf222e}"
    << "small{color:#555}</style></head><body>"
    << "<h1>pacs-agent</h1><p>Version " << PACS_AGENT_VERSION << " &middot; config <code>" << html_escape(cfg->source)
    << "</code> &middot; " << cfg->targets.size() << " targets, " << rows.size() << " probes</p>"
    << "<p><a href=\"/metrics\">Metrics</a> &middot; <a href=\"/-/healthy\">Health</a> &middot; "
    << "<a href=\"/-/ready\">Readiness</a></p>"
    << "<h2>Probes</h2><table><tr><th>Target</th><th>Probe</th><th>Status</th><th>Last run</th><th>Duration</th>"
    << "<th>Reason</th><th>Message</th><th>Recent (newest left)</th><th>Runs / failures / skipped</th><th>Try</th></tr>";
  for (const auto& st : rows) {
    h << "<tr><td>" << html_escape(st.target) << "</td><td>" << html_escape(st.probe) << "</td>";
    if (!st.has_run) {
      h << "<td class=\"pending\">pending</td><td></td><td></td><td></td><td></td>";
    } else {
      h << "<td class=\"" << (st.last.success ? "ok\">OK" : "fail\">FAIL") << "</td><td>" << fmt_time(st.last.end)
        << "</td><td>" << fmt_seconds(st.last.duration_seconds) << "</td><td>"
        << (st.last.success ? "" : html_escape(to_string(st.last.reason))) << "</td><td>" << html_escape(st.last.message)
        << "</td>";
    }
    h << "<td class=\"h\">";
    for (const auto& r : st.recent) {
      h << "<span class=\"" << (r.success ? "s" : "f") << "\" title=\"" << fmt_time(r.end) << " "
        << (r.success ? "ok" : html_escape(to_string(r.reason))) << "\"></span>";
    }
    std::string check = st.probe.substr(st.probe.find('_') + 1);
    h << "</td><td>" << st.runs << " / " << st.failures << " / " << st.skipped << "</td>"
      << "<td><a href=\"/probe?target=" << html_escape(st.target) << "&amp;check=" << html_escape(check)
      << "\">probe now</a></td></tr>";
  }
  h << "</table><h2>Recent failures</h2><table><tr><th>Time</th><th>Target</th><th>Probe</th><th>Reason</th><th>Message</th></tr>";
  std::vector<std::tuple<std::chrono::system_clock::time_point, const ProbeStatus*, const RunRecord*>> fails;
  for (const auto& st : rows)
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
