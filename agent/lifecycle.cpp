#include "agent/lifecycle.h"

#include <csignal>
#include <functional>

namespace pacs {

Lifecycle::Lifecycle(Logger& log) : log_(log), stop_signals_(ioc_, SIGTERM, SIGINT), hup_(ioc_, SIGHUP) {}

int Lifecycle::run(Agent& agent, HttpServer& server) {
  std::function<void()> wait_hup = [&] {
    hup_.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      log_.info("SIGHUP: reloading config");
      agent.request_reload();
      wait_hup();
    });
  };
  wait_hup();
  stop_signals_.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    log_.info("shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
    server.stop();
    hup_.cancel();
    ioc_.stop();
  });
  agent.start();
  ioc_.run();
  agent.stop();
  return 0;
}

}  // namespace pacs
