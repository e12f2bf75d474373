// Golden fixture of the filesystem kind (tests/support/golden.h): one volume
// that exists (every gauge, stuck = 0).
#include "tests/support/golden.h"

namespace pacs::test {
namespace {

class FilesystemGolden : public GoldenFixture {
 public:
  std::string start(const TempDir& dir) override {
    return "[[filesystem]]\nname = \"filesystem-tmp\"\npath = \"" + dir.path().string() + "\"\n";
  }
};

}  // namespace
}  // namespace pacs::test

PACS_GOLDEN_FIXTURE(filesystem, pacs::test::FilesystemGolden);
