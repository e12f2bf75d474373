// One run path: the same failing specs run on the schedule and through
// /probe give the same pacs_probe_* answers (success, reason, HELP text);
// and a /probe request that can no longer run is answered, never dropped.
#include <gtest/gtest.h>

#include <prometheus/text_serializer.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include "agent/probe_endpoint.h"
#include "agent/result_store.h"
#include "agent/scheduler.h"
#include "probes/log.h"

namespace pacs {
namespace {
using namespace std::chrono_literals;

enum class Behaviour { succeed, fail_io, fail_without_reason, throw_error, hang_until_stop };

std::atomic<int> g_hanging{0};  // hang_until_stop runs in progress

class ScriptedProbe : public Probe {
 public:
  explicit ScriptedProbe(Behaviour b) : b_(b) {}
  ProbeResult run(const ProbeContext& ctx) override {
    switch (b_) {
      case Behaviour::succeed: return ProbeResult::ok("fine");
      case Behaviour::fail_io: return ProbeResult::fail(Reason::io_error, "no such folder");
      case Behaviour::fail_without_reason: return {false, Reason::none, "a probe bug", {}};
      case Behaviour::throw_error: throw std::runtime_error("boom");
      case Behaviour::hang_until_stop:
        ++g_hanging;
        while (!ctx.stopping() && !ctx.expired()) std::this_thread::sleep_for(5ms);
        --g_hanging;
        return ProbeResult::fail(Reason::io_timeout, "stopped");
    }
    return ProbeResult::ok();
  }

 private:
  Behaviour b_;
};

ProbeSpec spec(const std::string& target, Behaviour b, Duration timeout = 2s) {
  ProbeSpec p;
  p.kind = "test";
  p.check = "scripted";
  p.probe = "test_scripted";
  p.target = target;
  p.interval = 50ms;
  p.timeout = timeout;
  p.reasons = {Reason::io_error};
  p.make = [b] { return std::make_unique<ScriptedProbe>(b); };
  p.fingerprint = "v1";
  return p;
}

std::shared_ptr<Config> config_of(std::vector<ProbeSpec> specs) {
  auto c = std::make_shared<Config>();
  c->source = "test";
  c->probes = std::move(specs);
  for (const auto& p : c->probes) c->targets.push_back({p.target, p.kind, {&p}});
  return c;
}

std::string serialize(const std::vector<prometheus::MetricFamily>& fams) {
  std::ostringstream os;
  prometheus::TextSerializer().Serialize(os, fams);
  return os.str();
}

std::optional<std::string> line_with(const std::string& text, const std::string& prefix) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return line;
  return std::nullopt;
}

HttpReply probe_now(ProbeEndpoint& ep, const std::string& target) {
  std::promise<HttpReply> p;
  HttpRequest req;
  req.method = "GET";
  req.path = "/probe";
  req.query["target"] = target;
  ep.handle(req, [&p](HttpReply r) { p.set_value(std::move(r)); });
  return p.get_future().get();
}

TEST(RunPath, ScheduledAndOnDemandRunsAgree) {
  Logger log(LogLevel::error);
  const std::vector<std::pair<std::string, Behaviour>> cases = {{"ok", Behaviour::succeed},
                                                                {"io", Behaviour::fail_io},
                                                                {"noreason", Behaviour::fail_without_reason},
                                                                {"throws", Behaviour::throw_error}};
  const std::map<std::string, std::string> want_reason = {
      {"ok", "none"}, {"io", "io_error"}, {"noreason", "internal"}, {"throws", "internal"}};
  std::vector<ProbeSpec> specs;
  for (const auto& [t, b] : cases) specs.push_back(spec(t, b));
  auto cfg = config_of(specs);

  ResultStore store;
  {
    Scheduler sched(store, log, 2);
    sched.apply(cfg->probes);
    auto end = Clock::now() + 10s;
    auto all_ran = [&] {
      for (const auto& st : store.snapshot())
        if (st.runs < 1) return false;
      return true;
    };
    while (!all_ran() && Clock::now() < end) std::this_thread::sleep_for(10ms);
    sched.stop();
  }
  std::string scheduled = serialize(store.Collect());
  ProbeEndpoint ep(log, [cfg] { return cfg; });

  for (const auto& [t, b] : cases) {
    SCOPED_TRACE(t);
    HttpReply r = probe_now(ep, t);
    ASSERT_EQ(r.status, 200) << r.body;
    const std::string labels = "{probe=\"test_scripted\",target=\"" + t + "\"}";
    auto s_success = line_with(scheduled, "pacs_probe_success" + labels);
    auto p_success = line_with(r.body, "pacs_probe_success" + labels);
    ASSERT_TRUE(s_success && p_success) << scheduled << "\n---\n" << r.body;
    EXPECT_EQ(*s_success, *p_success);
    // The reason: a counter on the schedule, an info series on /probe.
    const std::string reason = want_reason.at(t);
    EXPECT_TRUE(line_with(r.body, "pacs_probe_result_info{probe=\"test_scripted\",target=\"" + t + "\",reason=\"" +
                                      reason + "\"} 1"))
        << r.body;
    if (reason != "none") {
      auto counter = line_with(scheduled, "pacs_probe_failures_total{probe=\"test_scripted\",target=\"" + t +
                                              "\",reason=\"" + reason + "\"}");
      ASSERT_TRUE(counter) << scheduled;
      EXPECT_NE(*counter, "pacs_probe_failures_total{probe=\"test_scripted\",target=\"" + t + "\",reason=\"" +
                              reason + "\"} 0");
    }
    // One HELP text per metric, whoever ran the check.
    EXPECT_EQ(line_with(scheduled, "# HELP pacs_probe_success "), line_with(r.body, "# HELP pacs_probe_success "));
  }
}

TEST(RunPath, QueuedProbeRequestsAreAnswered503OnStop) {
  Logger log(LogLevel::error);
  // More requests than workers: some run (and hang), the rest wait in the queue. Each asks
  // for another target: identical requests would share one run (the endpoint coalesces them).
  const int n = ProbeEndpoint::kWorkers + 3;
  std::vector<ProbeSpec> specs;
  for (int i = 0; i < n; ++i) specs.push_back(spec("hang" + std::to_string(i), Behaviour::hang_until_stop, 30s));
  auto cfg = config_of(specs);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> statuses;
  ProbeEndpoint ep(log, [cfg] { return cfg; });  // after what its callbacks touch: destroyed first
  HttpRequest req;
  req.method = "GET";
  req.path = "/probe";
  for (int i = 0; i < n; ++i) {
    req.query["target"] = "hang" + std::to_string(i);
    ep.handle(req, [&](HttpReply r) {
      std::lock_guard lk(mu);
      statuses.push_back(r.status);
      cv.notify_all();
    });
  }
  auto until = Clock::now() + 10s;  // wait until every worker runs one (the rest are queued)
  while (g_hanging.load() < ProbeEndpoint::kWorkers && Clock::now() < until) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(g_hanging.load(), ProbeEndpoint::kWorkers);
  ep.stop();                           // running ones see the stop flag; queued ones are cancelled
  std::unique_lock lk(mu);
  ASSERT_TRUE(cv.wait_for(lk, 10s, [&] { return static_cast<int>(statuses.size()) == n; }))
      << "only " << statuses.size() << " of " << n << " requests were answered";
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 503), 3) << "the queued requests";
  EXPECT_EQ(std::count(statuses.begin(), statuses.end(), 200), ProbeEndpoint::kWorkers) << "the running ones";
  // After stop, a new request is refused at once, not queued.
  lk.unlock();
  HttpReply late;
  ep.handle(req, [&](HttpReply r) { late = std::move(r); });
  EXPECT_EQ(late.status, 503);
}

}  // namespace
}  // namespace pacs
