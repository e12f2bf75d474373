// A real hung mount for tests: a FUSE file system whose server never
// answers. Every call that needs the server (opendir, readdir, stat of
// anything below the mount point) blocks in the kernel, as on a dead NFS
// server. release() closes the FUSE device: the kernel aborts the
// connection, the blocked calls fail with ENOTCONN, and the mount is
// detached.
//
// Needs root (mount(2)) and /dev/fuse; available() says why not.
#pragma once

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

namespace pacs::test {

class DeadMount {
 public:
  explicit DeadMount(const std::filesystem::path& at) : at_(at) {
    std::filesystem::create_directories(at_);
    fd_ = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);  // CLOEXEC: children must not keep the connection alive
    if (fd_ < 0) {
      why_ = std::string("/dev/fuse: ") + std::strerror(errno);
      return;
    }
    std::string opts = "fd=" + std::to_string(fd_) + ",rootmode=40000,user_id=0,group_id=0,allow_other";
    if (::mount("pacs-test-dead", at_.c_str(), "fuse", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
      why_ = std::string("mount fuse: ") + std::strerror(errno);
      ::close(fd_);
      fd_ = -1;
      return;
    }
    mounted_ = true;
  }
  ~DeadMount() { release(); }
  DeadMount(const DeadMount&) = delete;
  DeadMount& operator=(const DeadMount&) = delete;

  bool available() const { return mounted_; }
  const std::string& why_not() const { return why_; }
  const std::filesystem::path& path() const { return at_; }

  void release() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (mounted_) ::umount2(at_.c_str(), MNT_DETACH);
    mounted_ = false;
  }

 private:
  std::filesystem::path at_;
  int fd_ = -1;
  bool mounted_ = false;
  std::string why_;
};

}  // namespace pacs::test

// Skips when no FUSE mount can be made on a developer machine; in CI (CI
// set, root) it fails: CI must run the hung-mount tests.
#define PACS_REQUIRE_DEAD_MOUNT(m)                                                   \
  do {                                                                              \
    if (!(m).available()) {                                                         \
      if (std::getenv("CI")) FAIL() << "cannot make a hung mount: " << (m).why_not(); \
      GTEST_SKIP() << "cannot make a hung mount: " << (m).why_not();                \
    }                                                                               \
  } while (0)
