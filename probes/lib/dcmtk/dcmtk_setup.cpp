#include "probes/lib/dcmtk/dcmtk_setup.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/oflog/appender.h"
#include "dcmtk/oflog/logger.h"
#include "dcmtk/oflog/oflog.h"
#include "dcmtk/oflog/spi/logevent.h"

#include "probes/log.h"

namespace pacs::dcmtk {

namespace {

namespace l4 = ::dcmtk::log4cplus;

std::atomic<Logger*> g_log{nullptr};
bool g_done = false;

std::string_view dcmtk_level_name(l4::LogLevel l) {
  if (l >= l4::FATAL_LOG_LEVEL) return "FATAL";
  if (l >= l4::ERROR_LOG_LEVEL) return "ERROR";
  if (l >= l4::WARN_LOG_LEVEL) return "WARN";
  if (l >= l4::INFO_LOG_LEVEL) return "INFO";
  return "DEBUG";
}

// DCMTK's log events become lines of ours with component=dcmtk. Everything
// below FATAL is debug-level for us: DCMTK's INFO is chatter, and its
// WARN/ERROR lines describe a probe's failure, which the probe result
// already reports with a reason. DEBUG/TRACE events are dropped outright:
// at those levels DCMTK dumps whole datasets (C-FIND responses = PHI).
class LoggerAppender : public l4::Appender {
 public:
  ~LoggerAppender() override { destructorImpl(); }
  void close() override {}

 protected:
  void append(const l4::spi::InternalLoggingEvent& ev) override {
    if (ev.getLogLevel() < l4::INFO_LOG_LEVEL) return;
    Logger* log = g_log.load();
    if (!log) return;
    LogLevel ours = ev.getLogLevel() >= l4::FATAL_LOG_LEVEL ? LogLevel::error : LogLevel::debug;
    if (!log->enabled(ours)) return;
    const auto& msg = ev.getMessage();
    const auto& name = ev.getLoggerName();
    log->log(ours, std::string_view(msg.c_str(), msg.size()),
             {{"component", "dcmtk"},
              {"logger", std::string_view(name.c_str(), name.size())},
              {"dcmtk_level", dcmtk_level_name(ev.getLogLevel())}});
  }
};

}  // namespace

void setup(Logger& log) {
  if (g_done) return;
  // 1. Logging first, so whatever DCMTK says from here on is ours. DCMTK
  //    stays at INFO at most (never DEBUG/TRACE, which dump datasets), and
  //    is silenced entirely unless our log level is debug.
  g_log.store(&log);
  l4::Logger root = l4::Logger::getRoot();
  root.removeAllAppenders();
  root.addAppender(l4::SharedAppenderPtr(new LoggerAppender));
  root.setLogLevel(log.enabled(LogLevel::debug) ? l4::INFO_LOG_LEVEL : l4::FATAL_LOG_LEVEL);

  // 2. The data dictionary loads lazily (and silently fails); load it now
  //    and fail clearly.
  if (!dcmDataDict.isDictionaryLoaded()) {
    const char* path = std::getenv("DCMDICTPATH");
    throw std::runtime_error(std::string("DICOM data dictionary not loaded (DCMDICTPATH=") + (path ? path : "<unset>") +
                             "; the libdcmtk17 package installs it under /usr/share/libdcmtk17/)");
  }
  g_done = true;
}

void teardown() {
  l4::Logger root = l4::Logger::getRoot();
  root.setLogLevel(l4::OFF_LOG_LEVEL);
  root.removeAllAppenders();
  g_log.store(nullptr);
  g_done = false;
}

std::string version_line() { return std::string("dcmtk ") + OFFIS_DCMTK_VERSION_STRING; }

}  // namespace pacs::dcmtk
