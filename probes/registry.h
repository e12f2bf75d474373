// The probe kinds this agent is built with (the list is probes/registry.cpp).
//
// Thread-safety: kinds() is immutable after start; initialize_kinds() and
// shutdown_kinds() run once in main() while no other thread exists.
#pragma once

#include <string_view>
#include <vector>

#include "probes/kind.h"

namespace pacs {

class Logger;

// Every kind, in registry order.
const std::vector<const Kind*>& kinds();
const Kind* find_kind(std::string_view name);

// Every kind's init, in order; on a throw, shuts down the ones already
// initialised and rethrows.
void initialize_kinds(Logger& log);
// Every kind's shutdown, in reverse order.
void shutdown_kinds();

}  // namespace pacs
