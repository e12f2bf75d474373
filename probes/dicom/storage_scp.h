// The agent's own storage SCP for one run of a check: the C-MOVE destination
// (the PACS connects back and C-STOREs the retrieved instances) and the
// receiver of storage commitment reports sent on a new association.
//
// Life cycle, all within the run that owns it (RAII):
//   start()   takes the process-wide lock of the listen port (two runs that
//             use the same port — the scheduled run and a /probe request, or
//             retrieve and commit of one target — take turns, each bounded
//             by its deadline), binds listen_address:listen_port itself
//             (DCMTK 3.6.7 can only bind 0.0.0.0) and starts one thread;
//   thread    accepts associations until the deadline or stop, one at a
//             time; each accepted socket is handed to DCMTK's acceptor
//             through dcmExternalSocketHandle (under a process-wide mutex:
//             it is a global), and is shut down by the watchdog at the
//             deadline;
//   ~         stops and joins the thread, shuts down an association in
//             progress, closes every descriptor, releases the port.
// Nothing is written to disk: instances are received into memory, compared
// with what the run expects (InstanceFilter) and dropped. Associations whose
// called AE title is not ours are rejected (0x0107).
//
// Thread-safety: one owner thread calls start/wait/events/the destructor;
// the SCP thread only touches the state behind mu_.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "probes/dicom/dimse_ops.h"

namespace pacs::dicom {

// dcmExternalSocketHandle is a process global that DCMTK's acceptor reads:
// whoever hands DCMTK an accepted socket through it in this process (the
// agent's SCP, a test peer) sets, uses and resets it under this mutex.
std::mutex& external_socket_mutex();

class StorageScp {
 public:
  struct Settings {
    ScpOptions scp;
    InstanceFilter filter;            // which instances to accept
    std::string transaction_uid;      // storage commitment reports to expect
    std::string commit_sop_instance;  // the instance the commitment is about
  };
  // A step for the owner's transcript, with when it happened (the SCP
  // thread cannot write the owner's Transcript itself).
  struct Event {
    Clock::time_point at;
    std::string step, detail;
  };
  struct State {
    int associations = 0;  // accepted
    int rejected = 0;      // rejected (wrong called AE title, nothing acceptable)
    Received received;
    std::optional<CommitReport> report;
    std::string error;  // the thread hit a local error (message)
  };

  StorageScp(Settings s, Clock::time_point deadline);
  ~StorageScp();
  StorageScp(const StorageScp&) = delete;
  StorageScp& operator=(const StorageScp&) = delete;

  // Lock the port, bind, listen, start the thread. A failure is io_error
  // (port in use, address not local) or inbound_timeout (the port stayed
  // taken by another run until the deadline).
  std::optional<Failure> start();
  // Waits until `done(state)` holds or `until` passes; returns the state.
  State wait(const std::function<bool(const State&)>& done, Clock::time_point until);
  State state();
  // Events since the last call, oldest first.
  std::vector<Event> take_events();
  // Stops and joins the thread and closes everything (also done by ~).
  void stop();

  // How many StorageScp threads are running in this process (tests use it
  // to prove that every run joined its thread).
  static int running_threads();

 private:
  void serve();
  void handle(int fd);
  void event(std::string step, std::string detail);

  Settings s_;
  Clock::time_point deadline_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool port_locked_ = false;

  std::mutex mu_;
  std::condition_variable cv_;
  State state_;
  std::vector<Event> events_;
  SocketDeadline* current_ = nullptr;  // the association being served (under mu_)
};

}  // namespace pacs::dicom
