// The golden fixture makes the built agent export every metric the README
// documents (the repository-wide metrics docs test runs it too).
#include <gtest/gtest.h>

#include "tests/support/golden_check.h"

TEST(DicomWebGolden, FixtureExportsEveryDocumentedMetric) {
  PACS_REQUIRE_PEER("Orthanc");
  PACS_REQUIRE_PEER("dump2dcm");
  PACS_REQUIRE_PEER("openssl");
  std::string log;
  auto missing = pacs::test::golden_missing_metrics("dicomweb", log);
  EXPECT_TRUE(missing.empty()) << ::testing::PrintToString(missing) << "\n" << log;
}
