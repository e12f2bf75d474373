// DICOM answers without a socket: a peer's C-FIND response identifier as
// DCMTK decodes it from the wire (implicit and explicit VR little endian,
// the transfer syntaxes the probes propose), and the filesystem kind's
// mountinfo parser. The agent only counts responses, but DCMTK parses every
// byte a peer sends first.
#include <sys/sysmacros.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdatset.h"
#include "dcmtk/dcmdata/dcistrmb.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/oflog/oflog.h"
#include "probes/filesystem/filesystem.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);  // every malformed input is logged otherwise
    return true;
  }();
  (void)quiet;
  for (E_TransferSyntax xfer : {EXS_LittleEndianImplicit, EXS_LittleEndianExplicit}) {
    DcmInputBufferStream in;
    in.setBuffer(data, static_cast<offile_off_t>(size));
    in.setEos();
    DcmDataset ds;
    ds.transferInit();
    (void)ds.read(in, xfer, EGL_noChange, 64 * 1024);
    ds.transferEnd();
    (void)ds.card();
    in.releaseBuffer();
  }
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)pacs::filesystem::superblock_readonly(text, makedev(8, 1), "/var/lib/orthanc");
  return 0;
}
