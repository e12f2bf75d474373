#include "agent/agent.h"

#include <sstream>

#include <prometheus/text_serializer.h>

#include "agent/exposition.h"
#include "agent/process_metrics.h"
#include "agent/status_page.h"
#include "probes/registry.h"

namespace pacs {

namespace pm = prometheus;

namespace {

// True when a browser says the request comes from another site: a
// Sec-Fetch-Site of cross-site/same-site, or an Origin whose host:port is
// not the Host the request was sent to. Scripts (curl, Prometheus) send
// neither header.
bool cross_site(const HttpRequest& req) {
  auto fetch_site = req.header("sec-fetch-site");
  if (fetch_site == "cross-site" || fetch_site == "same-site") return true;
  auto origin = req.header("origin");
  if (origin.empty()) return false;
  auto scheme_end = origin.find("://");
  std::string host = scheme_end == std::string::npos ? origin : origin.substr(scheme_end + 3);
  return origin == "null" || host != req.header("host");
}

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string library_versions() {
  std::string out;
  for (const Kind* k : kinds()) {
    if (!k->versions) continue;
    for (const auto& v : k->versions()) {
      if (out.find(v) != std::string::npos) continue;  // several kinds may share a library
      out += (out.empty() ? "" : ", ") + v;
    }
  }
  return out;
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
      probe_endpoint_(log, [this] { return config(); }),
      router_(http_requests_) {
  pm::BuildGauge()
      .Name("pacs_agent_build_info")
      .Help("Build information of the running pacs-agent; always 1.")
      .Register(*registry_)
      .Add({{"version", PACS_AGENT_VERSION}, {"libraries", library_versions()}, {"compiler", std::string("gcc-") + __VERSION__}})
      .Set(1);
  reload_ok_.Add({}).Set(1);
  reload_ts_.Add({}).Set(now_unix());

  router_.add("/metrics", "metrics", {"GET"}, [this](const HttpRequest& req, Respond respond) {
    // The probe results come ready-made from the store (rendered and
    // deflated once per change); only the few live lines are built now.
    HttpReply r;
    r.content_type = exposition::kContentType;
    r.headers.push_back({"Vary", "Accept-Encoding"});
    std::string live = live_metrics_text();
    if (exposition::accepts_gzip(req.header("accept-encoding"))) {
      auto results = store_.deflated();
      auto tail = exposition::deflate_part(live);
      r.body = exposition::gzip_join({results.get(), &tail});
      r.headers.push_back({"Content-Encoding", "gzip"});
    } else {
      auto results = store_.text();
      r.body.reserve(results->size() + live.size());
      r.body = *results;
      r.body += live;
    }
    respond(std::move(r));
  });
  router_.add("/probe", "probe", {"GET"},
              [this](const HttpRequest& req, Respond respond) { probe_endpoint_.handle(req, std::move(respond)); });
  router_.add("/", "status", {"GET"}, [this](const HttpRequest&, Respond respond) {
    auto cfg = config();
    StatusSnapshot snap{PACS_AGENT_VERSION, cfg->source, cfg->targets.size(), store_.snapshot(), {}};
    snap.figures = figures_of(history_.last_samples(), snap.probes, std::chrono::system_clock::now());
    HttpReply r;
    r.content_type = "text/html; charset=utf-8";
    r.body = render_status_page(snap);
    r.compressible = true;
    respond(std::move(r));
  });
  router_.add("/target", "target", {"GET"}, [this](const HttpRequest& req, Respond respond) {
    auto q = req.query.find("name");
    if (q == req.query.end() || q->second.empty()) return respond(HttpReply::text(400, "name parameter is missing\n"));
    TargetSnapshot snap;
    snap.version = PACS_AGENT_VERSION;
    snap.name = q->second;
    snap.now = std::chrono::system_clock::now();
    for (auto& st : store_.snapshot())
      if (st.target == snap.name) snap.probes.push_back(std::move(st));
    // Never echo arbitrary input back: only configured names get a page.
    if (snap.probes.empty()) {
      return respond(HttpReply::text(404, "unknown target (only configured targets have a page)\n"));
    }
    snap.history = history_.target(snap.name);
    std::map<std::pair<std::string, std::string>, std::vector<Sample>> samples;
    for (const auto& h : snap.history) samples[{h.probe, h.target}] = h.samples;
    snap.figures = figures_of(samples, snap.probes, snap.now);
    HttpReply r;
    r.content_type = "text/html; charset=utf-8";
    r.body = render_target_page(snap);
    r.compressible = true;
    respond(std::move(r));
  });
  router_.add("/-/healthy", "healthy", {"GET"},
              [](const HttpRequest&, Respond respond) { respond(HttpReply::text(200, "Healthy\n")); });
  router_.add("/-/ready", "ready", {"GET"}, [this](const HttpRequest&, Respond respond) {
    respond(started_ ? HttpReply::text(200, "Ready\n") : HttpReply::text(503, "Not ready\n"));
  });
  router_.add("/-/reload", "reload", {"POST", "PUT"}, [this](const HttpRequest& req, Respond respond) {
    // As Prometheus: lifecycle endpoints only with --web.enable-lifecycle.
    if (!opts_.enable_lifecycle) {
      return respond(HttpReply::text(403, "Lifecycle API is not enabled (start with --web.enable-lifecycle; SIGHUP reloads too)\n"));
    }
    // A web page elsewhere must not make a browser on the hospital network
    // reload us (a form POST needs no CORS preflight).
    if (cross_site(req)) return respond(HttpReply::text(403, "cross-site request refused\n"));
    request_reload([respond](const ReloadOutcome& o) {
      switch (o.status) {
        case ReloadOutcome::Status::reloaded: return respond(HttpReply::text(200, "config reloaded\n"));
        case ReloadOutcome::Status::failed: return respond(HttpReply::text(500, "failed to reload config: " + o.error + "\n"));
        case ReloadOutcome::Status::shutting_down: return respond(HttpReply::text(503, "shutting down\n"));
      }
    });
  });
  for (const auto& h : router_.names()) {
    http_requests_.Add({{"handler", h}, {"code", "200"}});  // the common series exist from the start
  }
  scheduler_ = std::make_unique<Scheduler>(store_, log_, config_->agent.max_concurrent_probes, &history_);
  lane_ = std::thread([this] { reload_loop(); });
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
  {
    std::lock_guard lock(lane_mu_);
    lane_stop_ = true;
  }
  lane_cv_.notify_all();
  if (lane_.joinable()) lane_.join();  // a reload in progress finishes first (it only reads files)
  if (scheduler_) scheduler_->stop();
  probe_endpoint_.stop();
}

void Agent::request_reload(std::function<void(const ReloadOutcome&)> done) {
  {
    std::lock_guard lock(lane_mu_);
    if (!lane_stop_) {
      lane_requested_ = true;
      if (done) lane_waiting_.push_back(std::move(done));
      lane_cv_.notify_all();
      return;
    }
  }
  if (done) done({ReloadOutcome::Status::shutting_down, {}});
}

void Agent::reload_loop() {
  std::unique_lock lock(lane_mu_);
  for (;;) {
    lane_cv_.wait(lock, [this] { return lane_stop_ || lane_requested_; });
    if (lane_stop_) break;
    lane_requested_ = false;
    auto waiting = std::move(lane_waiting_);
    lane_waiting_.clear();
    lock.unlock();
    std::string err = reload();
    ReloadOutcome outcome{err.empty() ? ReloadOutcome::Status::reloaded : ReloadOutcome::Status::failed, err};
    for (auto& w : waiting) w(outcome);
    lock.lock();
  }
  auto waiting = std::move(lane_waiting_);
  lane_waiting_.clear();
  lock.unlock();
  for (auto& w : waiting) w({ReloadOutcome::Status::shutting_down, {}});
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
  // TLS files (re-read even when unchanged: a certificate renewed in place)
  // and basic auth users take effect now; listen addresses need a restart.
  if (web_reload_) {
    try {
      web_reload_(next->web);
    } catch (const std::exception& e) {
      reload_ok_.Add({}).Set(0);
      log_.error("config reload failed; keeping the running config", {{"err", e.what()}});
      return e.what();
    }
  }
  if (next->web.listen_addresses != prev->web.listen_addresses) {
    log_.warn("[web] listen_address changed; it takes effect at the next restart");
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

std::string Agent::metrics_text() const { return *store_.text() + live_metrics_text(); }

std::string Agent::live_metrics_text() const {
  auto fams = registry_->Collect();
  pm::ClientMetric running;
  running.gauge.value = scheduler_ ? scheduler_->running() : 0;
  fams.push_back({"pacs_agent_probes_running", "Probe runs in progress.", pm::MetricType::Gauge, {running}});
  if (scheduler_) fams.push_back(scheduler_->lag_family());
  for (auto& f : collect_process_metrics()) fams.push_back(std::move(f));
  std::ostringstream os;
  pm::TextSerializer().Serialize(os, fams);
  return os.str();
}

void Agent::handle(const HttpRequest& req, Respond respond) { router_.handle(req, std::move(respond)); }

}  // namespace pacs
