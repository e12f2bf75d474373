#include "agent/probe_coalescer.h"

#include <memory>

namespace pacs {

std::string ProbeCoalescer::key(const HttpRequest& req) {
  std::string k;
  for (const auto& [name, value] : req.query) {  // sorted by name
    k += std::to_string(name.size()) + ":" + name + "=" + std::to_string(value.size()) + ":" + value + "&";
  }
  return k + "|" + req.header("x-prometheus-scrape-timeout-seconds");
}

std::optional<Respond> ProbeCoalescer::join(const std::string& key, Respond respond) {
  std::lock_guard lock(mu_);
  auto it = waiting_.find(key);
  if (it != waiting_.end()) {
    it->second.push_back(std::move(respond));
    ++joined_;
    return std::nullopt;
  }
  waiting_[key].push_back(std::move(respond));
  return Respond([this, key](HttpReply reply) {
    std::vector<Respond> all;
    {
      std::lock_guard l(mu_);
      auto w = waiting_.find(key);
      if (w == waiting_.end()) return;  // answered already
      all = std::move(w->second);
      waiting_.erase(w);
    }
    for (size_t i = 0; i + 1 < all.size(); ++i) all[i](reply);
    if (!all.empty()) all.back()(std::move(reply));
  });
}

std::size_t ProbeCoalescer::runs_in_flight() const {
  std::lock_guard lock(mu_);
  return waiting_.size();
}

std::size_t ProbeCoalescer::joined_total() const {
  std::lock_guard lock(mu_);
  return joined_;
}

}  // namespace pacs
