// Signals and the serve loop of the daemon.
//
// Signal handling is installed when a Lifecycle is constructed, first thing
// in main(), before anything listens or starts a thread: systemd may stop
// the service at any moment, and a SIGTERM that arrived before a handler
// existed would kill the process with nothing cleaned up. A signal that
// arrives early is kept and acted on once run() starts.
//
// Thread-safety: construct and run() on the main thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "agent/agent.h"
#include "agent/http_server.h"
#include "probes/log.h"

namespace pacs {

class Lifecycle {
 public:
  explicit Lifecycle(Logger& log);
  boost::asio::io_context& io() { return ioc_; }

  // Serves HTTP on this thread until SIGTERM or SIGINT; SIGHUP queues a
  // reload on the agent's reload lane. Then: stop accepting, stop the agent
  // (pending reloads and /probe requests are answered, running probes end by
  // their deadline, every thread is joined). Returns the exit code (0).
  int run(Agent& agent, HttpServer& server);

 private:
  Logger& log_;
  boost::asio::io_context ioc_{1};
  boost::asio::signal_set stop_signals_;
  boost::asio::signal_set hup_;
};

}  // namespace pacs
