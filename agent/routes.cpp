#include "agent/routes.h"

#include <algorithm>

namespace pacs {

void Router::add(std::string path, std::string name, std::vector<std::string> methods, Handler handler) {
  routes_.push_back({std::move(path), std::move(name), std::move(methods), std::move(handler)});
}

std::vector<std::string> Router::names() const {
  std::vector<std::string> out;
  for (const auto& r : routes_) out.push_back(r.name);
  return out;
}

void Router::handle(const HttpRequest& req, Respond respond) const {
  auto it = std::find_if(routes_.begin(), routes_.end(), [&](const Route& r) { return r.path == req.path; });
  std::string name = it == routes_.end() ? "other" : it->name;
  auto* requests = &requests_;
  Respond counted = [requests, name, respond = std::move(respond)](HttpReply r) {
    requests->Add({{"handler", name}, {"code", std::to_string(r.status)}}).Increment();
    respond(std::move(r));
  };
  if (it == routes_.end()) return counted(HttpReply::text(404, "not found\n"));
  const auto& m = it->methods;
  bool allowed = std::find(m.begin(), m.end(), req.method) != m.end() ||
                 (req.method == "HEAD" && std::find(m.begin(), m.end(), "GET") != m.end());
  if (!allowed) {
    std::string allow;
    for (const auto& x : m) allow += (allow.empty() ? "" : ", ") + x;
    HttpReply r = HttpReply::text(405, "method not allowed; use " + allow + "\n");
    r.headers.push_back({"Allow", allow});
    return counted(std::move(r));
  }
  it->handler(req, std::move(counted));
}

}  // namespace pacs
