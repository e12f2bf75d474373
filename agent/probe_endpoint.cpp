#include "agent/probe_endpoint.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <sstream>

#include <prometheus/text_serializer.h>

#include "agent/exposition.h"
#include "agent/probe_metrics.h"
#include "agent/probe_runner.h"

namespace pacs {

namespace pm = prometheus;
namespace M = probe_metrics;

namespace {


pm::MetricFamily single_gauge(std::string name, std::string help, double v) {
  pm::ClientMetric m;
  m.gauge.value = v;
  return {std::move(name), std::move(help), pm::MetricType::Gauge, {std::move(m)}};
}

// One check's part of a debug=true answer: what ran, under which deadline,
// and each step of the attempt (probes/probe.h: Transcript).
std::string debug_section(const ProbeSpec& spec, Clock::duration budget, const Transcript& t) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f s", std::chrono::duration<double>(budget).count());
  std::string out = "\n\nTranscript of " + spec.probe + " for target " + spec.target + " (deadline " + buf + "):\n";
  return out + t.text();  // its last step is the result (run_probe)
}

}  // namespace

ProbeEndpoint::ProbeEndpoint(Logger& log, std::function<std::shared_ptr<const Config>()> config)
    : log_(log), config_(std::move(config)) {}

void ProbeEndpoint::stop() {
  stopping_ = true;
  pool_.stop();
}

void ProbeEndpoint::handle(const HttpRequest& req, Respond respond) {
  auto cfg = config_();
  auto tq = req.query.find("target");
  if (tq == req.query.end() || tq->second.empty()) {
    return respond(HttpReply::text(400, "target parameter is missing\n"));
  }
  const Config::Target* target = cfg->find_target(tq->second);
  if (!target) {
    // Never echo arbitrary input back into pages or logs.
    return respond(HttpReply::text(400, "unknown target (only targets named in the config can be probed)\n"));
  }
  std::vector<const ProbeSpec*> specs = target->probes;
  if (auto cq = req.query.find("check"); cq != req.query.end() && !cq->second.empty()) {
    std::vector<const ProbeSpec*> picked;
    std::string valid;
    for (const ProbeSpec* s : specs) {
      valid += (valid.empty() ? "" : ", ") + s->check;
      if (s->check == cq->second || s->probe == cq->second) picked.push_back(s);
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
  // debug=true (as blackbox_exporter spells it): after the metrics, a
  // plain-text transcript of each check's attempt, for a person.
  const bool debug = [&] {
    auto d = req.query.find("debug");
    return d != req.query.end() && d->second == "true";
  }();
  // Identical requests in flight (same query, debug included) share one run
  // (see probe_coalescer.h).
  if (auto leader = coalescer_.join(ProbeCoalescer::key(req), std::move(respond))) {
    respond = std::move(*leader);
  } else {
    return;
  }
  if (inflight_.load() >= kMaxInflight) return respond(HttpReply::text(503, "too many concurrent /probe requests\n"));
  ++inflight_;
  auto start = Clock::now();
  auto run = [this, cfg, specs, scrape_timeout, start, respond, debug] {
    std::vector<pm::MetricFamily> fams;
    fams.reserve(8);
    fams.push_back({});  // probe_success, filled below
    fams.push_back({});  // probe_duration_seconds
    fams.push_back({});  // probe_timeout_seconds
    auto& success = M::family(fams, M::kSuccess);
    auto& duration = M::family(fams, M::kDuration);
    auto& result_info = M::family(fams, M::kResultInfo);
    std::vector<std::tuple<std::string, std::string, std::vector<Sample>>> samples;
    bool all_ok = true;
    double timeout_used = 0;
    std::string transcripts;
    for (const ProbeSpec* spec : specs) {
      auto check_start = Clock::now();
      double limit = std::chrono::duration<double>(spec->timeout).count();
      if (scrape_timeout) limit = std::min(limit, *scrape_timeout);
      timeout_used = std::max(timeout_used, limit);
      auto overall = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limit));
      auto probe = spec->make();
      auto deadline = std::min(overall, check_start + spec->timeout);
      std::optional<Transcript> transcript;
      if (debug) transcript.emplace(check_start);
      auto outcome = run_probe(*probe, *spec, deadline, &stopping_, log_, transcript ? &*transcript : nullptr);
      if (transcript) transcripts += debug_section(*spec, deadline - check_start, *transcript);
      const ProbeResult& r = outcome.result;
      all_ok = all_ok && r.success;
      auto m = M::series(*spec);
      m.gauge.value = r.success ? 1 : 0;
      success.metric.push_back(m);
      m.gauge.value = outcome.seconds;
      duration.metric.push_back(m);
      m.label.push_back({"reason", std::string(to_string(r.reason))});
      m.gauge.value = 1;
      result_info.metric.push_back(m);
      samples.emplace_back(spec->probe, spec->target, std::move(outcome.result.samples));
    }
    double total = std::chrono::duration<double>(Clock::now() - start).count();
    fams[0] = single_gauge("probe_success", "1 if every requested check succeeded.", all_ok ? 1 : 0);
    fams[1] = single_gauge("probe_duration_seconds", "Wall time of the whole /probe request.", total);
    fams[2] = single_gauge("probe_timeout_seconds", "Deadline applied to each check.", timeout_used);
    for (const auto& [p, t, s] : samples) M::append_samples(fams, p, t, s);
    std::ostringstream os;
    pm::TextSerializer().Serialize(os, fams);
    HttpReply reply;
    reply.content_type = exposition::kContentType;
    reply.body = os.str();
    if (debug) {
      // Not an exposition any more: plain text for a person, metrics first.
      reply.content_type = "text/plain; charset=utf-8";
      reply.body = "Metrics that would have been returned:\n" + reply.body + transcripts;
    }
    reply.compressible = true;
    --inflight_;
    respond(std::move(reply));
  };
  auto cancel = [this, respond] {
    --inflight_;
    respond(HttpReply::text(503, "shutting down\n"));
  };
  if (!pool_.post(run, cancel)) cancel();
}

}  // namespace pacs
