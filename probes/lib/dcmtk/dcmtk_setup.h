// Process-wide DCMTK set-up shared by every kind that uses DCMTK: its
// logging routed into ours (and never at a level that dumps datasets), and
// the data dictionary loaded up front so a missing one is a clear start-up
// error. docs/dcmtk.md explains each step.
//
// Thread-safety: setup() and teardown() run in main() while no other thread
// exists; setup() is idempotent (several kinds may call it).
#pragma once

#include <string>

namespace pacs {
class Logger;
}

namespace pacs::dcmtk {

// Throws std::runtime_error when the data dictionary cannot be loaded.
void setup(Logger& log);
void teardown();
std::string version_line();  // "dcmtk 3.6.7"

}  // namespace pacs::dcmtk
