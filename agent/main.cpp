// pacs-agent: Prometheus exporter for PACS nodes. See README.md and
// docs/architecture.md.
#include <csignal>
#include <filesystem>
#include <iostream>
#include <memory>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/flags.h"
#include "agent/http_server.h"
#include "agent/lifecycle.h"
#include "probes/log.h"
#include "probes/registry.h"

namespace {

// Every probe kind's process-wide library set-up, once, before any thread;
// torn down after every thread has ended.
struct KindLibraries {
  explicit KindLibraries(pacs::Logger& log) { pacs::initialize_kinds(log); }
  ~KindLibraries() { pacs::shutdown_kinds(); }
};

}  // namespace

int main(int argc, char** argv) {
  // 1. Flags.
  pacs::Flags flags;
  std::string err;
  if (!pacs::parse_flags(argc, argv, flags, err)) {
    std::cerr << "pacs-agent: " << err << "\n\n" << pacs::kUsage;
    return 2;
  }
  if (flags.help) return std::cout << pacs::kUsage, 0;
  if (flags.version) return std::cout << pacs::version_text(), 0;
  auto level = pacs::parse_log_level(flags.log_level);
  if (!level) {
    std::cerr << "pacs-agent: --log.level must be debug, info, warn or error\n";
    return 2;
  }
  for (const auto& a : flags.listen) {
    std::string host;
    int port;
    if (!pacs::split_host_port(a, host, port)) {
      std::cerr << "pacs-agent: invalid --web.listen-address \"" << a << "\" (want host:port)\n";
      return 2;
    }
  }
  pacs::Logger log(*level);
  std::signal(SIGPIPE, SIG_IGN);

  // 2. Signal handling before anything else happens (see lifecycle.h).
  pacs::Lifecycle lifecycle(log);

  // 3. Probe kinds' libraries (DCMTK, libcurl), before any thread exists.
  std::unique_ptr<KindLibraries> libraries;
  try {
    libraries = std::make_unique<KindLibraries>(log);
  } catch (const std::exception& e) {
    log.error("cannot initialise probe libraries", {{"err", e.what()}});
    return 1;
  }

  // 4. The configuration: validated completely before anything starts.
  std::shared_ptr<const pacs::Config> config;
  try {
    config = flags.config_file ? pacs::load_config_file(*flags.config_file) : pacs::default_config();
  } catch (const std::exception& e) {
    if (flags.check) std::cerr << e.what() << "\n";
    else log.error("invalid configuration", {{"err", e.what()}});
    return 1;
  }
  if (flags.check) {
    std::cout << config->source << ": OK: " << config->targets.size() << " targets, " << config->probes.size()
              << " probes\n";
    return 0;
  }
  if (!flags.config_file) {
    log.info("no --config.file given: running on the embedded default config (self metrics and the root filesystem)");
  }
  log.info("starting pacs-agent", {{"version", PACS_AGENT_VERSION}, {"config", config->source}});

  // 5. The agent and its HTTP server.
  pacs::Agent agent(log, {flags.config_file, flags.listen, flags.enable_lifecycle}, config);
  const auto& web = config->web;
  std::unique_ptr<pacs::HttpServer> server;
  try {
    pacs::HttpLimits limits;
    limits.handler_timeout = pacs::kMaxProbeTimeout + std::chrono::seconds(30);
    server = std::make_unique<pacs::HttpServer>(
        lifecycle.io(), log, [&agent](const pacs::HttpRequest& r, pacs::Respond respond) { agent.handle(r, std::move(respond)); },
        limits, pacs::HttpSecurity{web.tls_cert_file, web.tls_key_file, web.tls_client_ca_file, web.basic_auth_users},
        agent.registry());
    // A reload swaps TLS files and users (the server outlives every reload:
    // the agent's reload lane is joined in lifecycle.run()).
    agent.on_web_reload([&server](const pacs::WebSettings& w) {
      server->set_security({w.tls_cert_file, w.tls_key_file, w.tls_client_ca_file, w.basic_auth_users});
    });
    for (const auto& a : agent.listen_addresses()) {
      server->listen(a);
      log.info("listening", {{"address", a}});
    }
  } catch (const std::exception& e) {
    log.error("cannot start HTTP server", {{"err", e.what()}});
    return 1;
  }
  if (!web.tls_cert_file.empty()) log.info("TLS enabled for every endpoint");
  if (!web.basic_auth_users.empty()) {
    log.info("basic auth required for every endpoint", {{"users", std::to_string(web.basic_auth_users.size())}});
  }

  // 6. Serve until SIGTERM/SIGINT; stop everything in order.
  int rc = lifecycle.run(agent, *server);
  server.reset();
  // Every thread the agent started has been joined by now; a helper left on
  // a hung mount (see probes/queue) would show here.
  std::error_code ec;
  auto threads = std::distance(std::filesystem::directory_iterator("/proc/self/task", ec), {});
  log.info("stopped", {{"threads", std::to_string(threads)}});
  return rc;
}
