#include "tests/support/golden.h"

namespace pacs::test {

std::vector<std::pair<std::string, GoldenFactory>>& golden_fixtures() {
  static std::vector<std::pair<std::string, GoldenFactory>> all;
  return all;
}

GoldenRegistration::GoldenRegistration(const char* kind, GoldenFactory factory) {
  golden_fixtures().emplace_back(kind, factory);
}

}  // namespace pacs::test
