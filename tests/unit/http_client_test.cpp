// The shared HTTP client against scripted peers on 127.0.0.1: how a reset,
// a close or silence in the middle of an exchange is reported, and what its
// transcript shows (request line without the query, status, timings) and
// never shows (query values, response bodies).
#include <gtest/gtest.h>

#include "probes/lib/http/http_client.h"
#include "tests/support/http_test_server.h"
#include "tests/support/probe_testing.h"

namespace pacs::http {
namespace {
using namespace std::chrono_literals;
using test::ctx_for;
using test::LoopbackHttpServer;
using test::LoopbackReply;
using test::LoopbackRequest;

// Patient data a peer may hold: in a query the agent sends and in the body
// it receives. Neither may reach a message or a transcript.
constexpr const char* kCanaryName = "CANARY^PATIENT";
constexpr const char* kCanaryId = "PID-CANARY-4711";

struct Traced {
  Response response;
  std::string transcript;
};

Traced get(const std::string& url, Duration timeout = 5s) {
  static bool once = [] {
    global_init();
    return true;
  }();
  (void)once;
  Client c(Settings{});
  auto ctx = ctx_for(timeout);
  Transcript t;
  ctx.transcript = &t;
  Traced out{c.get(url, ctx), {}};
  out.transcript = t.text();
  return out;
}

void expect_no_canary(const Traced& t) {
  for (const char* c : {kCanaryName, kCanaryId, "CANARY%5EPATIENT"}) {
    EXPECT_EQ(t.transcript.find(c), std::string::npos) << c << " in transcript:\n" << t.transcript;
    EXPECT_EQ(t.response.message.find(c), std::string::npos) << c << " in message: " << t.response.message;
  }
}

std::string canary_query() { return std::string("/studies?PatientName=CANARY%5EPATIENT&PatientID=") + kCanaryId; }

TEST(HttpClientReasons, ResetAfterTheRequestIsConnectionReset) {
  LoopbackHttpServer srv([](const LoopbackRequest&) { return LoopbackReply::reset_after(); });
  auto t = get(srv.url(canary_query()));
  EXPECT_FALSE(t.response.ok);
  EXPECT_EQ(t.response.reason, Reason::connection_reset) << t.response.message;
  EXPECT_NE(t.response.message.find("connection reset by the server"), std::string::npos) << t.response.message;
  EXPECT_TRUE(t.response.connected);
  EXPECT_NE(t.transcript.find("GET  " + srv.url("/studies?...")), std::string::npos) << t.transcript;
  EXPECT_NE(t.transcript.find("connected  TCP connect"), std::string::npos) << t.transcript;
  EXPECT_EQ(t.transcript.find("HTTP "), std::string::npos) << "no status arrived:\n" << t.transcript;
  // Control: the canary did reach the peer, in the query the agent sent.
  ASSERT_EQ(srv.requests().size(), 1u);
  EXPECT_NE(srv.requests()[0].target.find(kCanaryId), std::string::npos);
  expect_no_canary(t);
}

TEST(HttpClientReasons, ResetInTheMiddleOfTheBodyIsConnectionReset) {
  std::string partial = std::string("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n") +
                        "{\"PatientName\":\"" + kCanaryName + "\",";
  LoopbackHttpServer srv([&](const LoopbackRequest&) { return LoopbackReply::reset_after(partial); });
  auto t = get(srv.url(canary_query()));
  EXPECT_EQ(t.response.reason, Reason::connection_reset) << t.response.message;
  expect_no_canary(t);
}

TEST(HttpClientReasons, CloseWithoutAnAnswerIsConnectionReset) {
  LoopbackHttpServer srv([](const LoopbackRequest&) { return LoopbackReply::close_after(); });
  auto t = get(srv.url("/x"));
  EXPECT_EQ(t.response.reason, Reason::connection_reset) << t.response.message;
  EXPECT_NE(t.response.message.find("closed the connection without answering"), std::string::npos)
      << t.response.message;
}

TEST(HttpClientReasons, CloseBeforeTheWholeBodyIsConnectionReset) {
  std::string partial = std::string("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n") +
                        "{\"PatientID\":\"" + kCanaryId + "\",";
  LoopbackHttpServer srv([&](const LoopbackRequest&) { return LoopbackReply::close_after(partial); });
  auto t = get(srv.url(canary_query()));
  EXPECT_EQ(t.response.reason, Reason::connection_reset) << t.response.message;
  EXPECT_NE(t.response.message.find("before the whole answer arrived"), std::string::npos) << t.response.message;
  expect_no_canary(t);
}

TEST(HttpClientReasons, SilenceAfterConnectIsResponseTimeout) {
  LoopbackHttpServer srv([](const LoopbackRequest&) { return LoopbackReply::silent(); });
  auto t = get(srv.url("/slow"), 500ms);
  EXPECT_EQ(t.response.reason, Reason::response_timeout) << t.response.message;
  EXPECT_NE(t.transcript.find("connected  TCP connect"), std::string::npos) << t.transcript;
}

TEST(HttpClientReasons, NothingListeningIsConnectionRefusedNotReset) {
  int port;
  {
    LoopbackHttpServer srv([](const LoopbackRequest&) { return LoopbackReply::json("{}"); });
    port = srv.port();
  }
  auto t = get("http://127.0.0.1:" + std::to_string(port) + "/");
  EXPECT_EQ(t.response.reason, Reason::connection_refused) << t.response.message;
  EXPECT_FALSE(t.response.connected);
}

TEST(HttpClientTranscript, UnauthorizedShowsRequestLineStatusAndTimingsButNoBody) {
  std::string body = std::string("{\"error\":\"unauthorized\",\"PatientName\":\"") + kCanaryName + "\"}";
  LoopbackHttpServer srv([&](const LoopbackRequest&) { return LoopbackReply::json(body, 401); });
  auto t = get(srv.url(canary_query()));
  EXPECT_EQ(t.response.reason, Reason::http_status);
  EXPECT_EQ(t.response.status, 401);
  EXPECT_NE(t.transcript.find("GET  " + srv.url("/studies?...")), std::string::npos) << t.transcript;
  EXPECT_NE(t.transcript.find("HTTP 401  first byte "), std::string::npos) << t.transcript;
  EXPECT_NE(t.transcript.find(std::to_string(body.size()) + " bytes, application/json"), std::string::npos)
      << t.transcript;
  // Control: the body with the canary did arrive.
  EXPECT_NE(t.response.body.find(kCanaryName), std::string::npos);
  expect_no_canary(t);
}

}  // namespace
}  // namespace pacs::http
