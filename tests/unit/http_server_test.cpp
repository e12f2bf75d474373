// The Beast HTTP server and the agent's routes, over real sockets on
// 127.0.0.1 with port 0.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <crypt.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <thread>

#include "agent/agent.h"
#include "agent/http_server.h"
#include "probes/config_table.h"
#include "tests/support/support.h"

namespace pacs {
namespace {
using namespace std::chrono_literals;
using test::http_request;

std::string gunzip(const std::string& in) {
  z_stream zs{};
  inflateInit2(&zs, 15 + 16);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[16384];
  int rc;
  do {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof buf - zs.avail_out);
  } while (rc == Z_OK);
  inflateEnd(&zs);
  return rc == Z_STREAM_END ? out : "<corrupt gzip>";
}

int raw_connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A server running `handler` on its own io thread.
struct ServerFixture {
  explicit ServerFixture(HttpHandler handler, HttpLimits limits = {})
      : log(LogLevel::error, [](std::string_view) {}), server(ioc, log, std::move(handler), limits) {
    server.listen("127.0.0.1:0");
    port = server.bound_ports().at(0);
    thread = std::thread([this] { ioc.run(); });
  }
  ~ServerFixture() {
    boost::asio::post(ioc, [this] { server.stop(); });
    ioc.stop();
    thread.join();
  }
  boost::asio::io_context ioc{1};
  Logger log;
  HttpServer server;
  int port = 0;
  std::thread thread;
};

struct AgentServer {
  AgentServer()
      : log(LogLevel::error, [](std::string_view) {}),
        agent(log, {}, default_config()),
        fx([this](const HttpRequest& r, Respond respond) { agent.handle(r, std::move(respond)); }) {
    agent.start();
  }
  ~AgentServer() { agent.stop(); }
  Logger log;
  Agent agent;
  ServerFixture fx;
};

TEST(HttpRoutes, StatusCodes) {
  AgentServer s;
  int port = s.fx.port;
  auto m = http_request(port, "GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(m.body.find("pacs_agent_build_info{"), std::string::npos);
  EXPECT_EQ(http_request(port, "GET", "/-/healthy").body, "Healthy\n");
  EXPECT_EQ(http_request(port, "GET", "/-/ready").status, 200);
  auto r = http_request(port, "GET", "/-/reload");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "POST, PUT");
  EXPECT_EQ(http_request(port, "POST", "/-/reload").status, 403);  // without --web.enable-lifecycle
  EXPECT_EQ(http_request(port, "POST", "/metrics").status, 405);
  EXPECT_EQ(http_request(port, "GET", "/nope").status, 404);
  EXPECT_EQ(http_request(port, "GET", "/probe").status, 400);
  auto u = http_request(port, "GET", "/probe?target=not-configured");
  EXPECT_EQ(u.status, 400);
  EXPECT_EQ(u.body, "unknown target (only targets named in the config can be probed)\n");
  auto st = http_request(port, "GET", "/");
  EXPECT_EQ(st.status, 200);
  EXPECT_NE(st.body.find("<h1>pacs-agent</h1>"), std::string::npos);
  auto head = http_request(port, "HEAD", "/metrics");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  // Requests are counted by handler and code.
  auto after = http_request(port, "GET", "/metrics").body;
  EXPECT_NE(after.find("pacs_agent_http_requests_total{code=\"405\",handler=\"reload\"} 1"), std::string::npos);
  EXPECT_NE(after.find("pacs_agent_http_requests_total{code=\"403\",handler=\"reload\"} 1"), std::string::npos);
  EXPECT_NE(after.find("pacs_agent_http_requests_total{code=\"404\",handler=\"other\"} 1"), std::string::npos);
}

TEST(HttpRoutes, GzipWhenAsked) {
  AgentServer s;
  auto plain = http_request(s.fx.port, "GET", "/metrics");
  EXPECT_EQ(plain.headers.count("content-encoding"), 0u);
  auto gz = http_request(s.fx.port, "GET", "/metrics", {{"Accept-Encoding", "gzip, deflate"}});
  ASSERT_EQ(gz.status, 200);
  EXPECT_EQ(gz.headers["content-encoding"], "gzip");
  EXPECT_LT(gz.body.size(), plain.body.size());
  std::string text = gunzip(gz.body);
  EXPECT_EQ(text.rfind("# HELP", 0), 0u);
  EXPECT_NE(text.find("pacs_agent_build_info{"), std::string::npos);
  auto refused = http_request(s.fx.port, "GET", "/metrics", {{"Accept-Encoding", "gzip;q=0"}});
  EXPECT_EQ(refused.headers.count("content-encoding"), 0u);
}

TEST(HttpServer, HeaderAndBodyLimits) {
  ServerFixture fx([](const HttpRequest&, Respond r) { r(HttpReply::text(200, "ok")); });
  auto big_header = http_request(fx.port, "GET", "/", {{"X-Big", std::string(20000, 'a')}});
  EXPECT_EQ(big_header.status, 431);
  auto big_body = http_request(fx.port, "POST", "/", {}, std::string(70000, 'b'));
  EXPECT_EQ(big_body.status, 413);
  EXPECT_EQ(http_request(fx.port, "GET", "/").status, 200);  // still serving
}

TEST(HttpServer, ReadTimeoutClosesSilentConnections) {
  HttpLimits limits;
  limits.request_timeout = 1s;
  ServerFixture fx([](const HttpRequest&, Respond r) { r(HttpReply::text(200, "ok")); }, limits);
  int fd = raw_connect(fx.port);
  ASSERT_GE(fd, 0);
  const char partial[] = "GET / HTTP/1.1\r\nHost: x\r\n";  // never finished
  ASSERT_GT(::write(fd, partial, sizeof partial - 1), 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[64];
  ssize_t n = ::read(fd, buf, sizeof buf);  // 0 = server closed it; -1 = our 10 s guard expired
  ::close(fd);
  EXPECT_EQ(n, 0) << "server kept a silent connection open";
}

TEST(HttpServer, KeepAliveServesSeveralRequestsOnOneConnection) {
  ServerFixture fx([](const HttpRequest& req, Respond r) { r(HttpReply::text(200, req.path)); });
  int fd = raw_connect(fx.port);
  ASSERT_GE(fd, 0);
  std::string reqs = "GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two?a=%20b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::write(fd, reqs.data(), reqs.size()), static_cast<ssize_t>(reqs.size()));
  std::string all;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) all.append(buf, static_cast<size_t>(n));
  ::close(fd);
  EXPECT_NE(all.find("\r\n\r\n/one"), std::string::npos);
  EXPECT_NE(all.find("\r\n\r\n/two"), std::string::npos);
}

TEST(HttpServer, QueryDecodingAndAsyncReplyFromAnotherThread) {
  std::vector<std::thread> workers;
  std::mutex mu;
  ServerFixture fx([&](const HttpRequest& req, Respond r) {
    std::string v = req.query.count("target") ? req.query.at("target") : "";
    std::lock_guard lock(mu);
    workers.emplace_back([r, v] {
      std::this_thread::sleep_for(100ms);
      r(HttpReply::text(200, v));
    });
  });
  auto res = http_request(fx.port, "GET", "/probe?target=a%2Fb+c&x");
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "a/b c");
  for (auto& t : workers) t.join();
}

TEST(HttpRoutes, ManyConcurrentScrapes) {
  AgentServer s;
  std::atomic<int> ok{0}, bad{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 32; ++i) {
    clients.emplace_back([&] {
      for (int j = 0; j < 10; ++j) {
        auto r = http_request(s.fx.port, "GET", "/metrics", {{"Accept-Encoding", "gzip"}});
        (r.status == 200 ? ok : bad)++;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 320);
  EXPECT_EQ(bad.load(), 0);
}

TEST(HttpServer, ListenErrorsNameTheAddress) {
  boost::asio::io_context ioc;
  Logger log(LogLevel::error, [](std::string_view) {});
  HttpServer a(ioc, log, [](const HttpRequest&, Respond r) { r(HttpReply::text(200, "")); });
  a.listen("127.0.0.1:0");
  std::string taken = "127.0.0.1:" + std::to_string(a.bound_ports().at(0));
  HttpServer b(ioc, log, [](const HttpRequest&, Respond r) { r(HttpReply::text(200, "")); });
  try {
    b.listen(taken);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "cannot listen on " + taken + ": Address already in use");
  }
  EXPECT_THROW(b.listen("example.org:80"), std::runtime_error);
}

}  // namespace
}  // namespace pacs

namespace pacs {
namespace {

std::string bcrypt(const std::string& password) {
  char salt[64];
  crypt_gensalt_rn("$2b$", 4, nullptr, 0, salt, sizeof salt);  // low cost: tests only
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

TEST(HttpSecurity, BasicAuthProtectsEveryEndpoint) {
  HttpSecurity sec;
  sec.basic_auth_users["prometheus"] = bcrypt("s3cret");
  ASSERT_TRUE(is_bcrypt_hash(sec.basic_auth_users["prometheus"]));
  boost::asio::io_context ioc{1};
  Logger log(LogLevel::error, [](std::string_view) {});
  HttpServer server(ioc, log, [](const HttpRequest&, Respond r) { r(HttpReply::text(200, "ok")); }, {}, sec);
  server.listen("127.0.0.1:0");
  int port = server.bound_ports().at(0);
  std::thread t([&] { ioc.run(); });
  auto none = test::http_get(port, "/-/healthy");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.headers["www-authenticate"], "Basic realm=\"pacs-agent\", charset=\"UTF-8\"");
  EXPECT_EQ(test::http_get(port, "/metrics", {{"Authorization", basic("prometheus", "wrong")}}).status, 401);
  EXPECT_EQ(test::http_get(port, "/metrics", {{"Authorization", basic("nobody", "s3cret")}}).status, 401);
  EXPECT_EQ(test::http_get(port, "/metrics", {{"Authorization", "Basic !!notbase64"}}).status, 401);
  EXPECT_EQ(test::http_get(port, "/metrics", {{"Authorization", basic("prometheus", "s3cret")}}).status, 200);
  EXPECT_EQ(test::http_get(port, "/metrics", {{"Authorization", basic("prometheus", "s3cret")}}).status, 200);  // cached
  boost::asio::post(ioc, [&] { server.stop(); });
  ioc.stop();
  t.join();
}

TEST(HttpSecurity, TlsServesHttpsAndRefusesPlainText) {
  PACS_REQUIRE_PEER("openssl");
  PACS_REQUIRE_PEER("curl");
  test::TempDir dir;
  std::string out;
  ASSERT_EQ(test::run_command({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                               "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                               (dir / "key.pem").string(), "-out", (dir / "cert.pem").string()},
                              &out),
            0)
      << out;
  HttpSecurity sec;
  sec.tls_cert_file = (dir / "cert.pem").string();
  sec.tls_key_file = (dir / "key.pem").string();
  EXPECT_NO_THROW(check_tls_files(sec.tls_cert_file, sec.tls_key_file, ""));
  EXPECT_THROW(check_tls_files(sec.tls_cert_file, (dir / "missing.pem").string(), ""), std::runtime_error);
  boost::asio::io_context ioc{1};
  Logger log(LogLevel::error, [](std::string_view) {});
  HttpServer server(ioc, log, [](const HttpRequest& r, Respond respond) { respond(HttpReply::text(200, "tls:" + r.path)); },
                    {}, sec);
  server.listen("127.0.0.1:0");
  int port = server.bound_ports().at(0);
  std::thread t([&] { ioc.run(); });
  std::string url = "https://127.0.0.1:" + std::to_string(port) + "/metrics";
  EXPECT_EQ(test::run_command({"curl", "-sS", "--max-time", "10", "--cacert", sec.tls_cert_file, url}, &out), 0) << out;
  EXPECT_EQ(out, "tls:/metrics");
  EXPECT_NE(test::run_command({"curl", "-sS", "--max-time", "10", url}, &out), 0) << "untrusted cert accepted";
  auto plain = test::http_get(port, "/metrics");
  EXPECT_EQ(plain.status, 0) << "plain HTTP answered on a TLS port";
  boost::asio::post(ioc, [&] { server.stop(); });
  ioc.stop();
  t.join();
}

TEST(HttpSecurity, WebConfigValidation) {
  try {
    parse_config("[web]\n[web.basic_auth_users]\nalice = \"plaintext\"\n", "w.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "w.toml:3: web.basic_auth_users.alice: must be a bcrypt hash ($2a$/$2b$/$2y$, 60 characters), e.g. from htpasswd -nB");
  }
  try {
    parse_config("[web]\ntls_cert_file = \"/x.pem\"\n", "w.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "w.toml:2: web.tls_cert_file: tls_cert_file and tls_key_file go together");
  }
  try {
    parse_config("[web]\ntls_cert_file = \"/nonexistent/c.pem\"\ntls_key_file = \"/nonexistent/k.pem\"\n", "w.toml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("w.toml:2: web.tls_cert_file: tls_cert_file /nonexistent/c.pem: ", 0), 0u)
        << e.what();
  }
  auto c = parse_config("[web]\n[web.basic_auth_users]\nalice = \"" + bcrypt("pw") + "\"\n", "w.toml");
  EXPECT_EQ(c->web.basic_auth_users.size(), 1u);
}

}  // namespace
}  // namespace pacs
