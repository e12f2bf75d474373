// The web surface under abuse, over real sockets on loopback addresses:
// idle and slow connections cannot starve a scrape, a handler that never
// replies still gets an answer out, bcrypt never runs on the io thread,
// lifecycle endpoints are off by default, identical /probe requests share
// one run, and a reload swaps users and certificates.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <crypt.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "agent/agent.h"
#include "agent/http_auth.h"
#include "agent/http_server.h"
#include "agent/probe_coalescer.h"
#include "tests/support/http_test_server.h"
#include "tests/support/loopback_clients.h"
#include "tests/support/support.h"

namespace pacs {
namespace {
using namespace std::chrono_literals;
using test::connect_from;
using test::http_request;

// True when the server closed `fd` (read returns 0 or ECONNRESET) within `limit`.
bool closed_by_server(int fd, std::chrono::seconds limit) {
  timeval tv{static_cast<time_t>(limit.count()), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[256];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) continue;  // e.g. an error reply before the close
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }
}

// A server on its own io thread, its counters in `registry`.
struct Server {
  explicit Server(HttpHandler handler, HttpLimits limits = {}, HttpSecurity sec = {})
      : log(LogLevel::error, [](std::string_view) {}),
        registry(std::make_shared<prometheus::Registry>()),
        server(ioc, log, std::move(handler), limits, std::move(sec), registry) {
    server.listen("127.0.0.1:0");
    port = server.bound_ports().at(0);
    thread = std::thread([this] { ioc.run(); });
  }
  // Runs `fn` on the io thread and waits for it (e.g. to drop held
  // Respond callbacks where the connections live).
  void on_io(const std::function<void()>& fn) {
    std::promise<void> done;
    boost::asio::post(ioc, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }
  ~Server() {
    boost::asio::post(ioc, [this] { server.stop(); });
    ioc.stop();
    thread.join();
  }
  double counter(const std::string& name, const std::string& label_value = "") {
    for (const auto& f : registry->Collect()) {
      if (f.name != name) continue;
      for (const auto& m : f.metric) {
        if (!label_value.empty() && (m.label.empty() || m.label[0].value != label_value)) continue;
        return f.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
      }
    }
    return -1;
  }
  boost::asio::io_context ioc{1};
  Logger log;
  std::shared_ptr<prometheus::Registry> registry;
  HttpServer server;
  int port = 0;
  std::thread thread;
};

std::string bcrypt(const std::string& password, unsigned long cost = 4) {
  char salt[64];
  crypt_gensalt_rn("$2b$", cost, nullptr, 0, salt, sizeof salt);
  crypt_data d{};
  return crypt_r(password.c_str(), salt, &d);
}

std::string basic(const std::string& user, const std::string& pass) {
  std::string in = user + ":" + pass, out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return "Basic " + out;
}

// 300 connections that never send a byte (from 10 client addresses, so the
// total cap is what binds) plus one slowloris client trickling a header:
// a scrape from another address is still answered, because the longest-idle
// connections are closed to make room and the slow one runs out of time.
TEST(HttpStarvation, IdleConnectionsAndSlowlorisCannotStarveAScrape) {
  HttpLimits limits;
  limits.request_timeout = 2s;
  Server s([](const HttpRequest&, Respond r) { r(HttpReply::text(200, "scraped\n")); }, limits);
  std::vector<int> idle;
  for (int i = 0; i < 300; ++i) {
    int fd = connect_from("127.0.0." + std::to_string(2 + i % 10), s.port);
    ASSERT_GE(fd, 0) << "connect " << i;
    idle.push_back(fd);
  }
  int slow = connect_from("127.0.0.20", s.port);
  ASSERT_GE(slow, 0);
  std::atomic<bool> trickling{true};
  std::thread loris([&] {
    const std::string header = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    for (size_t i = 0; trickling; ++i) {
      char c = i < header.size() ? header[i] : 'a';
      if (::send(slow, &c, 1, MSG_NOSIGNAL) != 1) break;
      std::this_thread::sleep_for(100ms);
    }
  });
  auto t0 = std::chrono::steady_clock::now();
  auto r = http_request(s.port, "GET", "/metrics", {}, {}, 5s);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.status, 200) << r.error << " (a full server refused the scrape)";
  std::cout << "scrape beside 300 idle connections and a slowloris client: " << seconds * 1000 << " ms\n";
  EXPECT_LE(s.server.connections(), limits.max_connections + 1);
  EXPECT_GE(s.counter("pacs_agent_http_connections_evicted_total"), 300 - limits.max_connections);
  // The slow client is cut off at request_timeout.
  EXPECT_TRUE(closed_by_server(slow, 30s)) << "slowloris connection still open";
  trickling = false;
  loris.join();
  EXPECT_GE(s.counter("pacs_agent_http_connections_rejected_total", "request_timeout"), 1);
  for (int fd : idle) ::close(fd);
  ::close(slow);
}

// One client address may hold max_connections_per_client connections; its
// oldest idle one makes room for its next, and other clients are untouched.
TEST(HttpStarvation, PerClientCapEvictsThatClientsIdleConnections) {
  HttpLimits limits;
  limits.max_connections_per_client = 8;
  Server s([](const HttpRequest&, Respond r) { r(HttpReply::text(200, "ok")); }, limits);
  int other = connect_from("127.0.0.9", s.port);
  ASSERT_GE(other, 0);
  std::vector<int> mine;
  for (int i = 0; i < 20; ++i) mine.push_back(connect_from("127.0.0.8", s.port));
  // The first 12 of client .8 were closed to make room; .9's is still open.
  EXPECT_TRUE(closed_by_server(mine.front(), 10s));
  const std::string req = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(other, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  char buf[512];
  timeval tv{10, 0};
  setsockopt(other, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ssize_t n = ::read(other, buf, sizeof buf);
  ASSERT_GT(n, 0) << "another client's idle connection was evicted";
  EXPECT_EQ(std::string(buf, 12), "HTTP/1.1 200");
  for (auto until = Clock::now() + 20s; Clock::now() < until; std::this_thread::sleep_for(10ms)) {
    if (s.counter("pacs_agent_http_connections_evicted_total") >= 12) break;  // accepted asynchronously
  }
  EXPECT_EQ(s.counter("pacs_agent_http_connections_evicted_total"), 12);
  for (int fd : mine) ::close(fd);
  ::close(other);
}

// At the cap with nothing idle (every connection mid-request), a new one is
// refused and counted.
TEST(HttpStarvation, FullOfBusyConnectionsRefusesAndCounts) {
  HttpLimits limits;
  limits.max_connections = 4;
  std::vector<Respond> held;
  std::mutex mu;
  Server s([&](const HttpRequest&, Respond r) {
    std::lock_guard lock(mu);
    held.push_back(std::move(r));  // busy until released
  }, limits);
  std::vector<std::future<test::HttpResponse>> busy;
  for (int i = 0; i < 4; ++i) busy.push_back(std::async(std::launch::async, [&] { return http_request(s.port, "GET", "/", {}, {}, 20s); }));
  for (auto until = Clock::now() + 20s; Clock::now() < until; std::this_thread::sleep_for(10ms)) {
    std::lock_guard lock(mu);
    if (held.size() == 4) break;
  }
  auto refused = http_request(s.port, "GET", "/", {}, {}, 5s);
  EXPECT_EQ(refused.status, 0);
  EXPECT_EQ(s.counter("pacs_agent_http_connections_rejected_total", "max_connections"), 1);
  s.on_io([&] {
    std::lock_guard lock(mu);
    for (auto& r : held) r(HttpReply::text(200, "done"));
    held.clear();
  });
  for (auto& f : busy) EXPECT_EQ(f.get().status, 200);
}

// Beast's stream timeout runs only while a read or write is pending: the
// handler deadline is a timer of the server's own.
TEST(HttpDeadline, HandlerThatNeverRepliesGets503) {
  HttpLimits limits;
  limits.handler_timeout = 500ms;
  std::vector<Respond> never;
  std::mutex mu;
  Server s([&](const HttpRequest&, Respond r) {
    std::lock_guard lock(mu);
    never.push_back(std::move(r));
  }, limits);
  auto r = http_request(s.port, "GET", "/probe?target=stuck", {}, {}, 20s);
  EXPECT_EQ(r.status, 503) << r.error;
  EXPECT_EQ(r.body, "handler timed out\n");
  EXPECT_EQ(r.headers["connection"], "close");
  // A late reply is dropped.
  s.on_io([&] {
    std::lock_guard lock(mu);
    for (auto& x : never) x(HttpReply::text(200, "late"));
    never.clear();
  });
}

// bcrypt never runs on the io thread: while wrong passwords are being
// checked (cost 14, a second or so each), a scrape with remembered
// credentials is answered before any of them.
TEST(HttpAuth, WrongPasswordsDoNotStallScrapes) {
  HttpSecurity sec;
  sec.basic_auth_users["prometheus"] = bcrypt("s3cret", 14);
  Server s([](const HttpRequest&, Respond r) { r(HttpReply::text(200, "metrics")); }, {}, sec);
  const auto good = basic("prometheus", "s3cret");
  ASSERT_EQ(http_request(s.port, "GET", "/metrics", {{"Authorization", good}}, {}, 60s).status, 200);  // remembered
  std::atomic<int> bad_done{0};
  std::atomic<int> scrape_before_bad{-1};
  std::vector<std::thread> attackers;
  for (int i = 0; i < 3; ++i) {
    attackers.emplace_back([&, i] {
      auto r = http_request(s.port, "GET", "/metrics", {{"Authorization", basic("prometheus", "guess" + std::to_string(i))}}, {}, 60s);
      EXPECT_EQ(r.status, 401);
      ++bad_done;
    });
  }
  std::this_thread::sleep_for(300ms);  // the guesses are being checked now
  auto r = http_request(s.port, "GET", "/metrics", {{"Authorization", good}}, {}, 60s);
  scrape_before_bad = bad_done.load();
  EXPECT_EQ(r.status, 200);
  for (auto& t : attackers) t.join();
  EXPECT_EQ(scrape_before_bad.load(), 0) << "the scrape waited for bcrypt of wrong passwords";
}

TEST(HttpAuth, UnknownUsersCostABcryptAndFailuresAreRemembered) {
  BasicAuth auth({{"alice", bcrypt("pw")}});
  auto verify = [&](const std::string& header) {
    std::promise<BasicAuth::Verdict> p;
    auth.verify(header, [&](BasicAuth::Verdict v) { p.set_value(v); });
    return p.get_future().get();
  };
  EXPECT_EQ(auth.quick(basic("bob", "pw")), std::nullopt) << "an unknown user was refused without a bcrypt";
  EXPECT_EQ(verify(basic("bob", "pw")), BasicAuth::Verdict::deny);
  EXPECT_EQ(auth.bcrypt_runs(), 1u);
  EXPECT_EQ(auth.quick(basic("bob", "pw")), BasicAuth::Verdict::deny);  // remembered
  EXPECT_EQ(auth.quick(basic("alice", "wrong")), std::nullopt);
  EXPECT_EQ(verify(basic("alice", "wrong")), BasicAuth::Verdict::deny);
  EXPECT_EQ(auth.quick(basic("alice", "wrong")), BasicAuth::Verdict::deny);
  EXPECT_EQ(verify(basic("alice", "pw")), BasicAuth::Verdict::allow);
  EXPECT_EQ(auth.quick(basic("alice", "pw")), BasicAuth::Verdict::allow);
  EXPECT_EQ(auth.bcrypt_runs(), 3u);
  EXPECT_EQ(auth.quick("Bearer x"), BasicAuth::Verdict::deny);
  EXPECT_EQ(auth.quick("Basic !!!"), BasicAuth::Verdict::deny);
  EXPECT_EQ(BasicAuth({}).quick(""), BasicAuth::Verdict::allow);
}

TEST(HttpAuth, QueueOfChecksIsBounded) {
  BasicAuth auth({{"alice", bcrypt("pw", 10)}});
  std::atomic<int> busy{0}, done{0};
  for (size_t i = 0; i < BasicAuth::kMaxQueued + BasicAuth::kThreads + 20; ++i) {
    auth.verify(basic("alice", "guess" + std::to_string(i)), [&](BasicAuth::Verdict v) {
      if (v == BasicAuth::Verdict::busy) ++busy;
      ++done;
    });
  }
  EXPECT_GE(busy.load(), 1) << "the queue of bcrypt checks grew without bound";
}

TEST(HttpSecurity, SetSecuritySwapsUsersForNewRequests) {
  HttpSecurity sec;
  sec.basic_auth_users["prometheus"] = bcrypt("old");
  Server s([](const HttpRequest&, Respond r) { r(HttpReply::text(200, "ok")); }, {}, sec);
  EXPECT_EQ(http_request(s.port, "GET", "/", {{"Authorization", basic("prometheus", "old")}}).status, 200);
  sec.basic_auth_users["prometheus"] = bcrypt("new");
  s.server.set_security(sec);
  EXPECT_EQ(http_request(s.port, "GET", "/", {{"Authorization", basic("prometheus", "old")}}).status, 401)
      << "a rotated password still works";
  EXPECT_EQ(http_request(s.port, "GET", "/", {{"Authorization", basic("prometheus", "new")}}).status, 200);
  sec.tls_cert_file = "/nonexistent/cert.pem";
  sec.tls_key_file = "/nonexistent/key.pem";
  EXPECT_THROW(s.server.set_security(sec), std::runtime_error);
  EXPECT_EQ(http_request(s.port, "GET", "/", {{"Authorization", basic("prometheus", "new")}}).status, 200)
      << "a failed swap changed something";
}

TEST(HttpSecurity, SetSecuritySwapsTheCertificate) {
  PACS_REQUIRE_PEER("openssl");
  PACS_REQUIRE_PEER("curl");
  test::TempDir dir;
  auto make_cert = [&](const std::string& name) {
    std::string out;
    EXPECT_EQ(test::run_command({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                                 "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                                 (dir / (name + "-key.pem")).string(), "-out", (dir / (name + ".pem")).string()},
                                &out),
              0)
        << out;
    HttpSecurity sec;
    sec.tls_cert_file = (dir / (name + ".pem")).string();
    sec.tls_key_file = (dir / (name + "-key.pem")).string();
    return sec;
  };
  auto a = make_cert("a"), b = make_cert("b");
  Server s([](const HttpRequest&, Respond r) { r(HttpReply::text(200, "tls")); }, {}, a);
  std::string url = "https://127.0.0.1:" + std::to_string(s.port) + "/", out;
  auto curl_with = [&](const HttpSecurity& ca) {
    return test::run_command({"curl", "-sS", "--max-time", "10", "--cacert", ca.tls_cert_file, url}, &out);
  };
  EXPECT_EQ(curl_with(a), 0) << out;
  EXPECT_NE(curl_with(b), 0);
  s.server.set_security(b);
  EXPECT_EQ(curl_with(b), 0) << "the new certificate is not served: " << out;
  EXPECT_NE(curl_with(a), 0);
}

// ---------------------------------------------------------------------------
// The agent's routes.

std::shared_ptr<const Config> config_with(const std::string& toml) { return parse_config(toml, "t.toml"); }

TEST(HttpLifecycle, ReloadEndpointNeedsTheFlagAndRefusesCrossSite) {
  Logger log(LogLevel::error, [](std::string_view) {});
  for (bool enabled : {false, true}) {
    Agent agent(log, {std::nullopt, {}, enabled}, default_config());
    agent.start();
    Server s([&](const HttpRequest& r, Respond respond) { agent.handle(r, std::move(respond)); });
    auto r = http_request(s.port, "POST", "/-/reload");
    if (!enabled) {
      EXPECT_EQ(r.status, 403);
      EXPECT_NE(r.body.find("--web.enable-lifecycle"), std::string::npos) << r.body;
      EXPECT_EQ(agent.metrics_text().find("pacs_agent_http_requests_total{code=\"200\",handler=\"reload\"} 1"), std::string::npos);
    } else {
      EXPECT_EQ(r.status, 200) << r.body;
      auto host = "127.0.0.1:" + std::to_string(s.port);
      EXPECT_EQ(http_request(s.port, "POST", "/-/reload", {{"Origin", "http://" + host}}).status, 200);
      EXPECT_EQ(http_request(s.port, "POST", "/-/reload", {{"Origin", "https://evil.example"}}).status, 403);
      EXPECT_EQ(http_request(s.port, "POST", "/-/reload", {{"Origin", "null"}}).status, 403);
      EXPECT_EQ(http_request(s.port, "POST", "/-/reload", {{"Sec-Fetch-Site", "cross-site"}}).status, 403);
    }
    agent.stop();
  }
}

TEST(ProbeCoalescing, IdenticalConcurrentRequestsShareOneRun) {
  // A queue endpoint that never answers: every run lasts its 2 s timeout.
  test::LoopbackHttpServer peer([](const test::LoopbackRequest&) { return test::LoopbackReply::silent(); });
  Logger log(LogLevel::error, [](std::string_view) {});
  Agent agent(log, {}, config_with("[[queue]]\nname = \"slow\"\ntype = \"http_json\"\nurl = \"" + peer.url("/q") +
                                   "\"\ninterval = \"1h\"\ntimeout = \"2s\"\nvalues = [{ name = \"x\", pointer = \"/x\" }]\n"));
  Server s([&](const HttpRequest& r, Respond respond) { agent.handle(r, std::move(respond)); });
  std::vector<std::future<test::HttpResponse>> replies;
  for (int i = 0; i < 6; ++i) {
    replies.push_back(std::async(std::launch::async, [&] { return http_request(s.port, "GET", "/probe?target=slow", {}, {}, 30s); }));
  }
  for (auto& f : replies) {
    auto r = f.get();
    EXPECT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(test::metric_value(r.body, "probe_success"), 0.0) << r.body;
  }
  EXPECT_LT(peer.requests().size(), 6u) << "every request ran its own probe";
  // Sequential requests still run each time.
  size_t before = peer.requests().size();
  http_request(s.port, "GET", "/probe?target=slow", {}, {}, 30s);
  EXPECT_EQ(peer.requests().size(), before + 1);
  agent.stop();
}

TEST(ProbeCoalescing, KeyAndFanOut) {
  HttpRequest a, b;
  a.query = {{"target", "x"}};
  b.query = {{"target", "x"}, {"check", "echo"}};
  EXPECT_NE(ProbeCoalescer::key(a), ProbeCoalescer::key(b));
  HttpRequest c = a;
  c.headers["x-prometheus-scrape-timeout-seconds"] = "3";
  EXPECT_NE(ProbeCoalescer::key(a), ProbeCoalescer::key(c));
  ProbeCoalescer co;
  std::vector<std::string> got;
  auto leader = co.join("k", [&](HttpReply r) { got.push_back("1:" + r.body); });
  ASSERT_TRUE(leader);
  EXPECT_FALSE(co.join("k", [&](HttpReply r) { got.push_back("2:" + r.body); }));
  EXPECT_FALSE(co.join("k", [&](HttpReply r) { got.push_back("3:" + r.body); }));
  EXPECT_EQ(co.runs_in_flight(), 1u);
  (*leader)(HttpReply::text(200, "x"));
  EXPECT_EQ(got, (std::vector<std::string>{"1:x", "2:x", "3:x"}));
  EXPECT_EQ(co.runs_in_flight(), 0u);
  EXPECT_EQ(co.joined_total(), 2u);
  EXPECT_TRUE(co.join("k", [](HttpReply) {}));  // a new run after the last one answered
}

}  // namespace
}  // namespace pacs
