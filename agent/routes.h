// The HTTP surface as a table: path -> handler name, allowed methods,
// handler. Answers 404 and 405 (with Allow) itself and counts every request
// in pacs_agent_http_requests_total{handler, code}.
//
// Thread-safety: add() before serving; handle() from the io thread; the
// Respond it passes on may be called from any thread, once.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>

#include "agent/http_server.h"

namespace pacs {

class Router {
 public:
  using Handler = std::function<void(const HttpRequest&, Respond)>;
  explicit Router(prometheus::Family<prometheus::Counter>& requests) : requests_(requests) {}

  // `methods` e.g. {"GET"} (HEAD is allowed wherever GET is) or {"POST", "PUT"}.
  void add(std::string path, std::string name, std::vector<std::string> methods, Handler handler);
  void handle(const HttpRequest& req, Respond respond) const;
  // Handler names, for zero-initialising the request counter.
  std::vector<std::string> names() const;

 private:
  struct Route {
    std::string path, name;
    std::vector<std::string> methods;
    Handler handler;
  };
  std::vector<Route> routes_;
  prometheus::Family<prometheus::Counter>& requests_;
};

}  // namespace pacs
