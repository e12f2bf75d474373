// The connect() interposition that bounds DCMTK's TCP connect: it adopts
// the association's TCP socket, and nothing else a resolver may connect on
// the same thread first (which would leave the real socket unwatched).
#include <gtest/gtest.h>
#include <sys/socket.h>

#include "probes/dicom/association.h"

namespace pacs::dicom {
namespace {

TEST(DicomConnectHook, AdoptsTcpSocketsOnly) {
  EXPECT_TRUE(connect_hook_active());
  EXPECT_TRUE(connect_hook_adopts(AF_INET, SOCK_STREAM));
  EXPECT_FALSE(connect_hook_adopts(AF_INET, SOCK_DGRAM)) << "a DNS query's UDP socket was adopted";
  EXPECT_FALSE(connect_hook_adopts(AF_UNIX, SOCK_STREAM)) << "an nscd-style Unix socket was adopted";
}

}  // namespace
}  // namespace pacs::dicom
