// pacs-agent: Prometheus exporter for PACS nodes. See README.md.
#include <csignal>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/http_server.h"
#include "probes/log.h"

namespace {

constexpr const char* kUsage = R"(usage: pacs-agent [flags]

Prometheus exporter for PACS nodes: DICOM probes, storage and queue checks.

Flags:
  --config.file=PATH           TOML configuration file (default: embedded default:
                               self metrics and the root filesystem)
  --web.listen-address=ADDR    address to listen on, host:port; may repeat
                               (default: [web] listen_address, else 0.0.0.0:9727)
  --config.check               validate the configuration, print the result and exit
                               (0 = valid, 1 = invalid)
  --log.level=LEVEL            debug, info, warn or error (default: info)
  --version                    print version information and exit
  -h, --help                   show this help
)";

struct Flags {
  std::optional<std::string> config_file;
  std::vector<std::string> listen;
  bool check = false, version = false, help = false;
  std::string log_level = "info";
};

// Accepts --flag=value and --flag value, as Prometheus' kingpin does.
bool parse_flags(int argc, char** argv, Flags& f, std::string& err) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string name = a, value;
    bool has_value = false;
    if (auto eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    }
    auto take = [&]() -> bool {
      if (has_value) return true;
      if (i + 1 >= argc) {
        err = "flag " + name + " needs a value";
        return false;
      }
      value = argv[++i];
      return true;
    };
    if (name == "--config.file") {
      if (!take()) return false;
      f.config_file = value;
    } else if (name == "--web.listen-address") {
      if (!take()) return false;
      f.listen.push_back(value);
    } else if (name == "--log.level") {
      if (!take()) return false;
      f.log_level = value;
    } else if (name == "--config.check" && !has_value) {
      f.check = true;
    } else if (name == "--version" && !has_value) {
      f.version = true;
    } else if ((name == "--help" || name == "-h") && !has_value) {
      f.help = true;
    } else {
      err = "unknown flag " + name;
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  std::string err;
  if (!parse_flags(argc, argv, flags, err)) {
    std::cerr << "pacs-agent: " << err << "\n\n" << kUsage;
    return 2;
  }
  if (flags.help) {
    std::cout << kUsage;
    return 0;
  }
  if (flags.version) {
    std::cout << "pacs-agent, version " << PACS_AGENT_VERSION << " (dcmtk " << OFFIS_DCMTK_VERSION_STRING
              << ", gcc " << __VERSION__ << ")\n";
    return 0;
  }
  auto level = pacs::parse_log_level(flags.log_level);
  if (!level) {
    std::cerr << "pacs-agent: --log.level must be debug, info, warn or error\n";
    return 2;
  }
  pacs::Logger log(*level);
  std::signal(SIGPIPE, SIG_IGN);
  // Library-wide set-up must happen before any thread exists (DCMTK has a
  // racy one-time init; curl_global_init is not thread-safe).
  try {
    pacs::initialize_probe_libraries(log);
  } catch (const std::exception& e) {
    log.error("cannot initialise probe libraries", {{"err", e.what()}});
    return 1;
  }

  std::shared_ptr<const pacs::Config> config;
  try {
    config = flags.config_file ? pacs::load_config_file(*flags.config_file) : pacs::default_config();
  } catch (const std::exception& e) {
    if (flags.check) {
      std::cerr << e.what() << "\n";
    } else {
      log.error("invalid configuration", {{"err", e.what()}});
    }
    pacs::shutdown_probe_libraries();
    return 1;
  }
  if (flags.check) {
    std::cout << config->source << ": OK: " << config->targets.size() << " targets, " << config->probes.size()
              << " probes\n";
    pacs::shutdown_probe_libraries();
    return 0;
  }
  for (const auto& a : flags.listen) {
    std::string host;
    int port;
    if (!pacs::split_host_port(a, host, port)) {
      log.error("invalid --web.listen-address", {{"address", a}});
      return 2;
    }
  }
  if (!flags.config_file) {
    log.info("no --config.file given: running on the embedded default config (self metrics and the root filesystem)");
  }
  log.info("starting pacs-agent", {{"version", PACS_AGENT_VERSION}, {"config", config->source}});

  int rc = 0;
  {
    pacs::Agent agent(log, {flags.config_file, flags.listen}, config);
    boost::asio::io_context ioc(1);
    const auto& web = config->web;
    pacs::HttpSecurity security{web.tls_cert_file, web.tls_key_file, web.tls_client_ca_file, web.basic_auth_users};
    std::unique_ptr<pacs::HttpServer> server_ptr;
    try {
      server_ptr = std::make_unique<pacs::HttpServer>(
          ioc, log, [&agent](const pacs::HttpRequest& r, pacs::Respond respond) { agent.handle(r, std::move(respond)); },
          pacs::HttpLimits{}, security);
    } catch (const std::exception& e) {
      log.error("cannot set up TLS", {{"err", e.what()}});
      return 1;
    }
    pacs::HttpServer& server = *server_ptr;
    if (!web.tls_cert_file.empty()) log.info("TLS enabled for every endpoint");
    if (!web.basic_auth_users.empty()) {
      log.info("basic auth required for every endpoint", {{"users", std::to_string(web.basic_auth_users.size())}});
    }
    try {
      for (const auto& a : agent.listen_addresses()) {
        server.listen(a);
        log.info("listening", {{"address", a}});
      }
    } catch (const std::exception& e) {
      log.error("cannot start HTTP server", {{"err", e.what()}});
      rc = 1;
    }
    if (rc == 0) {
      agent.start();
      boost::asio::signal_set stop_signals(ioc, SIGTERM, SIGINT);
      boost::asio::signal_set hup(ioc, SIGHUP);
      std::function<void()> wait_hup = [&] {
        hup.async_wait([&](const boost::system::error_code& ec, int) {
          if (ec) return;
          log.info("SIGHUP: reloading config");
          // Reload reads files: do it off the io thread, like POST /-/reload.
          std::thread([&agent] { agent.reload(); }).detach();
          wait_hup();
        });
      };
      wait_hup();
      stop_signals.async_wait([&](const boost::system::error_code& ec, int sig) {
        if (ec) return;
        log.info("shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
        server.stop();
        hup.cancel();
        ioc.stop();
      });
      ioc.run();
      agent.stop();  // running probes end by their deadline
    }
  }
  pacs::shutdown_probe_libraries();
  log.info("stopped");
  return rc;
}
