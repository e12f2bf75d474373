// The golden fixture makes the built agent export every metric the README
// documents (the repository-wide metrics docs test runs it too).
#include <gtest/gtest.h>

#include "tests/support/golden_check.h"

TEST(Hl7Golden, FixtureExportsEveryDocumentedMetric) {
  PACS_REQUIRE_PEER("openssl");
  std::string log;
  auto missing = pacs::test::golden_missing_metrics("hl7", log);
  EXPECT_TRUE(missing.empty()) << ::testing::PrintToString(missing) << "\n" << log;
}
