// Golden metrics fixture for the backup kind (see tests/support/golden.h):
// a folder with two fresh backups (every success gauge, incl. the previous
// size and min_bytes), a folder whose backup is stale and a missing folder
// (the failure paths).
#include <fcntl.h>
#include <sys/stat.h>

#include <fstream>

#include "tests/support/golden.h"

namespace {

class BackupGolden : public pacs::test::GoldenFixture {
 public:
  std::string start(const pacs::test::TempDir& dir) override {
    auto fresh = dir / "backup-fresh";
    auto stale = dir / "backup-stale";
    std::filesystem::create_directories(fresh);
    std::filesystem::create_directories(stale);
    write(fresh / "db-1.sql.gz", 2048, 25 * 3600);
    write(fresh / "db-2.sql.gz", 4096, 3600);
    write(stale / "db-1.sql.gz", 4096, 3 * 86400);
    return "[[backup]]\nname = \"backup-fresh\"\npath = \"" + fresh.string() +
           "\"\npattern = \"*.sql.gz\"\nmin_bytes = 1024\n\n"
           "[[backup]]\nname = \"backup-stale\"\npath = \"" + stale.string() + "\"\npattern = \"*.sql.gz\"\n\n"
           "[[backup]]\nname = \"backup-missing\"\npath = \"" + (dir / "backup-missing").string() +
           "\"\npattern = \"*.sql.gz\"\n";
  }

 private:
  static void write(const std::filesystem::path& p, std::size_t size, long age_seconds) {
    std::ofstream(p, std::ios::binary) << std::string(size, 'b');
    timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = ::time(nullptr) - age_seconds;
    ts[0].tv_nsec = ts[1].tv_nsec = 0;
    ::utimensat(AT_FDCWD, p.c_str(), ts, 0);
  }
};

}  // namespace

PACS_GOLDEN_FIXTURE(backup, BackupGolden);
