#!/usr/bin/env python3
"""End-to-end: PACS down → metric → Prometheus → alert → Alertmanager → page (stdlib only).

Starts on free 127.0.0.1 ports, in a temp dir: Orthanc with synthetic studies, pacs-agent
watching it (echo + find, filesystem, Orthanc jobs, a spool folder), Prometheus with the
shipped rules (alerts/*.rules.yml, unchanged), Alertmanager with the shipped
deploy/alertmanager/alertmanager.yml (receiver URLs pointed at a webhook sink in this
process). Stops Orthanc, asserts PacsDicomEchoFailing reaches the pager receiver with the
right labels, restarts Orthanc, asserts it resolves, prints outage-to-page time; then runs
scripts/check-dashboards against that Prometheus and requires data where it must exist.

Modes (the rules are the shipped ones in both):
  default (CI):        probes 2 s, scrape/evaluation 1 s, Alertmanager group_wait 1 s.
  --production-timing: probes 15 s, scrape/evaluation 15 s, Alertmanager as shipped
                       (group_wait 10 s); asserts time-to-page <= 90 s.

Usage: stack_test.py [AGENT_BINARY] [--production-timing] [--keep]
       (or PACS_AGENT_BINARY=...). Every process started is stopped on exit, failure or Ctrl-C.
"""
import argparse
import datetime
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORTHANC_AET = "ORTHANC_E2E"

# Panels that must return data once the stack has run (see scripts/check-dashboards).
REQUIRE_DATA = [
    "pacs-fleet-overview:Availability by site (5m)",
    "pacs-fleet-overview:Failing probes by site",
    "pacs-fleet-overview:Agents down by site",
    "pacs-fleet-overview:Agent scrape status",
    "pacs-fleet-overview:Agent versions",
    "pacs-fleet-overview:Config reload",
    "pacs-fleet-overview:Probe status",
    "pacs-fleet-overview:Availability (5m)",
    "pacs-fleet-overview:Worst latencies (p90, 5m)",
    "pacs-fleet-overview:Failures by reason",
    "pacs-fleet-overview:Consecutive failed runs",
    "pacs-fleet-overview:Last run duration",
    "pacs-fleet-overview:Skipped runs",
    "pacs-ae-detail:DICOM probe status",
    "pacs-ae-detail:Phase latencies",
    "pacs-ae-detail:Run duration percentiles",
    "pacs-ae-detail:DIMSE status",
    "pacs-ae-detail:Failures by reason",
    "pacs-ae-detail:C-FIND matches",
    "pacs-ae-detail:C-FIND first response",
    "pacs-storage-capacity:Space available",
    "pacs-storage-capacity:Growth per day",
    "pacs-storage-capacity:Available space",
    "pacs-storage-capacity:Inodes free",
    "pacs-storage-capacity:Read-only and stuck mounts",
    "pacs-storage-capacity:Queue depth",
    "pacs-storage-capacity:Oldest item age",
    "pacs-storage-capacity:Jobs by state",
    "pacs-storage-capacity:Spool size",
    "pacs-storage-capacity:Archive studies",
    "pacs-storage-capacity:Archive instances",
    "pacs-storage-capacity:Archive growth",
    "pacs-storage-capacity:Archive stored bytes",
]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_req(method, url, data=None, timeout=5, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


class Webhook:
    """Alertmanager webhook sink: records every POST with its arrival time."""

    def __init__(self, echo=False):
        self.events, self.lock, self.echo = [], threading.Lock(), echo
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                event = json.loads(body or b"{}")
                with outer.lock:
                    outer.events.append((time.time(), self.path, event))
                if outer.echo:
                    for a in event.get("alerts", []):
                        lab = a.get("labels", {})
                        log(f"NOTIFICATION to {self.path.strip('/')}: {a.get('status', '?').upper()} "
                            f"{lab.get('alertname')} severity={lab.get('severity')} target={lab.get('target', '-')}"
                            f" -- {a.get('annotations', {}).get('summary', '')}")
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def find(self, path, alertname, status, since):
        with self.lock:
            for t, p, body in self.events:
                if t < since or p != path:
                    continue
                for a in body.get("alerts", []):
                    if a["labels"].get("alertname") == alertname and a["status"] == status:
                        return t, a, body
        return None

    def stop(self):
        self.server.shutdown()


class Stack:
    def __init__(self, tmp):
        self.tmp, self.procs = tmp, {}

    def start(self, name, argv, cwd=None):
        logf = open(os.path.join(self.tmp, f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, cwd=cwd or self.tmp,
                             start_new_session=True)
        self.procs[name] = p
        log(f"started {name} (pid {p.pid}): {' '.join(argv)}")
        return p

    def stop(self, name, timeout=10):
        p = self.procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log(f"stopped {name} (pid {p.pid})")

    def stop_all(self):
        for name in list(self.procs)[::-1]:
            self.stop(name)

    def check_alive(self):
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise AssertionError(f"{name} exited with {p.returncode}; see {self.tmp}/{name}.log")

    def tail(self, name, n=25):
        path = os.path.join(self.tmp, f"{name}.log")
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                lines = f.readlines()[-n:]
            print(f"---- {name}.log (last {len(lines)} lines) ----\n" + "".join(lines), end="")


def wait_for(what, fn, timeout, stack, interval=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        stack.check_alive()
        try:
            v = fn()
            if v:
                return v
        except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last})" if last else ""))


def prom_query(prom, expr):
    _, body = http_req("GET", f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    return json.loads(body)["data"]["result"]


def make_studies(tmp, orthanc_http, n=3):
    today = datetime.date.today().strftime("%Y%m%d")
    for i in range(1, n + 1):
        root = f"1.2.826.0.1.3680043.8.498.{int(time.time())}.{i}"
        dump = os.path.join(tmp, f"study{i}.dump")
        with open(dump, "w") as f:
            f.write(f"""(0008,0016) UI =SecondaryCaptureImageStorage
(0008,0018) UI [{root}.1.1]
(0008,0020) DA [{today}]
(0008,0030) TM [120000]
(0008,0060) CS [OT]
(0010,0010) PN [Synthetic^Patient{i}]
(0010,0020) LO [E2E{i:04d}]
(0020,000d) UI [{root}]
(0020,000e) UI [{root}.1]
(0020,0013) IS [1]
""")
        dcm = dump[:-5] + ".dcm"
        subprocess.run(["dump2dcm", "+te", dump, dcm], check=True)
        with open(dcm, "rb") as f:
            status, _ = http_req("POST", f"{orthanc_http}/instances", f.read(), headers={"Content-Type": "application/dicom"})
        assert status == 200, f"Orthanc refused study {i}: HTTP {status}"
    log(f"uploaded {n} synthetic studies (StudyDate {today})")


def write_orthanc_config(path, name, aet, dicom_port, http_port, db_dir):
    """Orthanc on 127.0.0.1 only, checking the called AE title, knowing the agent as a modality
    (at port 1, so a C-STORE to it fails: a way to make a failed job)."""
    with open(path, "w") as f:
        json.dump({"Name": name, "DicomAet": aet, "DicomPort": dicom_port,
                   "HttpPort": http_port, "RemoteAccessAllowed": False,
                   "AuthenticationEnabled": False, "StorageDirectory": db_dir,
                   "IndexDirectory": db_dir, "DicomCheckCalledAet": True,
                   "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowFind": True,
                   "DicomModalities": {"agent": ["PACS_AGENT", "127.0.0.1", 1]},
                   "Plugins": [], "HttpServerEnabled": True, "DicomServerEnabled": True}, f, indent=1)


def render_alertmanager(hook_port, fast):
    """The shipped deploy/alertmanager/alertmanager.yml, receivers pointed at the webhook sink;
    fast: group_wait 1 s and group_interval 2 s (so resolve notifications come quickly)."""
    with open(os.path.join(REPO, "deploy", "alertmanager", "alertmanager.yml")) as f:
        amcfg = f.read()
    amcfg = amcfg.replace("http://127.0.0.1:9095/", f"http://127.0.0.1:{hook_port}/")
    if fast:
        amcfg = amcfg.replace("group_wait: 10s", "group_wait: 1s").replace("group_wait: 30s", "group_wait: 1s")
        amcfg = amcfg.replace("group_interval: 1m", "group_interval: 2s")  # resolve notifications
    return amcfg


def interrupt_on_signals():
    """SIGTERM (ctest's timeout) and SIGINT raise KeyboardInterrupt, so cleanup always runs."""
    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def tear_down(stack, hook, tmp, keep):
    """Stops every process and the webhook (ignoring further Ctrl-C/SIGTERM meanwhile), then
    removes the temp dir, or keeps it (and says where) for a failed or --keep run."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stack.stop_all()
    hook.stop()
    if keep:
        log(f"logs and configs kept in {tmp}")
        return
    for _ in range(3):  # a stopped process' last writes can race the first pass
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.exists(tmp):
            break
        time.sleep(0.5)


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers will: TIME_WAIT is no conflict
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def run_demo(stack, start_orthanc, ports, tmp):
    """Keeps the stack running for a person: URLs, a short 'try this', Orthanc on/off keys."""
    u = {k: f"http://127.0.0.1:{v}" for k, v in ports.items()}
    print(f"""
================================================================================
 pacs-agent demo stack is up (all on 127.0.0.1; logs in {tmp})

   pacs-agent status page   {u['agent']}/
   pacs-agent metrics       {u['agent']}/metrics
   on-demand DICOM probe    {u['agent']}/probe?target=orthanc&check=echo
   Prometheus               {u['prom']}/alerts   (rules from alerts/)
   Alertmanager             {u['am']}/
   Orthanc (the "PACS")     {u['orthanc_http']}/app/explorer.html   DICOM port {ports['dicom']}

 Try this: type  s + Enter  to stop Orthanc. Within about 60-90 s the agent's
 echo probe fails, Prometheus fires PacsDicomEchoFailing, and Alertmanager
 pages the "pager" receiver (printed here as NOTIFICATION). Type  r + Enter
 to restart Orthanc and watch it resolve. q + Enter or Ctrl-C stops everything.
================================================================================
""", flush=True)
    while True:
        line = sys.stdin.readline() if sys.stdin and sys.stdin.isatty() else None
        if line is None:
            time.sleep(3600)  # not interactive: run until Ctrl-C / SIGTERM
            continue
        cmd = line.strip().lower()
        if cmd in ("q", "quit", "exit") or line == "":
            return 0
        if cmd == "s":
            stack.stop("orthanc")
            log("Orthanc stopped: watch the status page, Prometheus alerts and the pages printed here")
        elif cmd == "r":
            if "orthanc" in stack.procs:
                log("Orthanc is already running")
            else:
                start_orthanc()
                log("Orthanc restarted")
        else:
            print("s = stop Orthanc, r = restart Orthanc, q = quit", flush=True)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("agent", nargs="?", default=os.environ.get("PACS_AGENT_BINARY"))
    ap.add_argument("--production-timing", action="store_true",
                    help="15 s probes/scrapes/evaluation and the shipped Alertmanager timing; assert page <= 90 s")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    ap.add_argument("--demo", action="store_true",
                    help="run the stack with production timing until Ctrl-C (scripts/demo); no assertions")
    a = ap.parse_args(argv)
    if not a.agent or not os.access(a.agent, os.X_OK):
        print(f"stack_test: agent binary not found/executable: {a.agent!r} (argument or PACS_AGENT_BINARY)",
              file=sys.stderr)
        return 2
    for tool in ("Orthanc", "prometheus", "prometheus-alertmanager", "dump2dcm"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            print(f"stack_test: {tool} not found", file=sys.stderr)
            return 2
    a.agent = os.path.abspath(a.agent)
    prod = a.production_timing or a.demo
    probe_iv, scrape_iv = ("15s", "15s") if prod else ("2s", "1s")
    page_timeout, budget = (150, 90) if prod else (60, None)

    hook = Webhook(echo=a.demo)
    tmp = tempfile.mkdtemp(prefix="pacs-stack-")
    stack = Stack(tmp)

    interrupt_on_signals()

    ok = False
    try:
        if a.demo:  # the usual ports when they are free, so URLs look familiar
            ports = {k: (v if port_free(v) else free_port()) for k, v in
                     (("dicom", 4242), ("orthanc_http", 8042), ("agent", 9727), ("prom", 9090), ("am", 9093))}
        else:
            ports = {k: free_port() for k in ("dicom", "orthanc_http", "agent", "prom", "am")}
        orthanc_http = f"http://127.0.0.1:{ports['orthanc_http']}"
        prom = f"http://127.0.0.1:{ports['prom']}"
        am = f"http://127.0.0.1:{ports['am']}"
        agent_url = f"http://127.0.0.1:{ports['agent']}"
        os.makedirs(os.path.join(tmp, "orthanc-db"))
        os.makedirs(os.path.join(tmp, "spool"))
        for i in range(2):
            with open(os.path.join(tmp, "spool", f"waiting{i}.dcm"), "wb") as f:
                f.write(b"\0" * 1024)

        # --- Orthanc -------------------------------------------------------------------
        write_orthanc_config(os.path.join(tmp, "orthanc.json"), "pacs-e2e", ORTHANC_AET, ports["dicom"],
                             ports["orthanc_http"], os.path.join(tmp, "orthanc-db"))
        orthanc_bin = shutil.which("Orthanc") or "/usr/sbin/Orthanc"

        def start_orthanc():
            stack.start("orthanc", [orthanc_bin, os.path.join(tmp, "orthanc.json")])
            wait_for("Orthanc REST", lambda: http_req("GET", f"{orthanc_http}/system")[0] == 200, 30, stack)
        start_orthanc()
        make_studies(tmp, orthanc_http)

        # --- agent ---------------------------------------------------------------------
        agent_cfg = os.path.join(tmp, "pacs-agent.toml")
        with open(agent_cfg, "w") as f:
            f.write(f"""[agent]
calling_ae_title = "PACS_AGENT"
interval = "{probe_iv}"
timeout = "1s"

[web]
listen_address = "127.0.0.1:{ports['agent']}"

[[dicom]]
name = "orthanc"
host = "127.0.0.1"
port = {ports['dicom']}
called_ae_title = "{ORTHANC_AET}"
checks = ["echo", "find"]
interval = "{probe_iv}"
timeout = "1s"
  [dicom.find]
  level = "STUDY"
  keys = {{ StudyDate = "today" }}

[[filesystem]]
name = "e2e-tmp"
path = "{tmp}"

[[queue]]
name = "orthanc-jobs"
type = "orthanc"
url = "{orthanc_http}"

[[queue]]
name = "spool"
type = "directory"
path = "{os.path.join(tmp, 'spool')}"
""")
        stack.start("agent", [a.agent, f"--config.file={agent_cfg}",
                              f"--web.listen-address=127.0.0.1:{ports['agent']}", "--log.level=info"])
        wait_for("agent /-/ready", lambda: http_req("GET", f"{agent_url}/-/ready")[0] == 200, 30, stack)

        # --- Alertmanager: the shipped config, receivers pointed at the webhook sink ----
        with open(os.path.join(tmp, "alertmanager.yml"), "w") as f:
            f.write(render_alertmanager(hook.port, fast=not prod))
        stack.start("alertmanager", ["prometheus-alertmanager", f"--config.file={tmp}/alertmanager.yml",
                                     f"--storage.path={tmp}/am-data", f"--web.listen-address=127.0.0.1:{ports['am']}",
                                     "--cluster.listen-address="])
        wait_for("Alertmanager ready", lambda: http_req("GET", f"{am}/-/ready")[0] == 200, 30, stack)

        # --- Prometheus: the shipped rules, unchanged ----------------------------------
        rules = [os.path.join(REPO, "alerts", r) for r in
                 ("pacs-agent.rules.yml", "pacs-recording.rules.yml", "pacs-capacity.rules.yml",
                  "pacs-expectations.rules.yml")]
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write(f"""global:
  scrape_interval: {scrape_iv}
  scrape_timeout: {'1s' if not prod else '10s'}
  evaluation_interval: {scrape_iv}
  external_labels:
    site: e2e
rule_files: {json.dumps(rules)}
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{ports['am']}"]
scrape_configs:
  - job_name: pacs-agent
    static_configs:
      - targets: ["127.0.0.1:{ports['agent']}"]
""")
        stack.start("prometheus", ["prometheus", f"--config.file={tmp}/prometheus.yml",
                                   f"--storage.tsdb.path={tmp}/prom-data", f"--web.listen-address=127.0.0.1:{ports['prom']}"])
        wait_for("Prometheus ready", lambda: http_req("GET", f"{prom}/-/ready")[0] == 200, 30, stack)

        if a.demo:
            ok = True
            return run_demo(stack, start_orthanc, ports, tmp)

        # --- healthy baseline ----------------------------------------------------------
        wait_for("echo success and zero consecutive failures in Prometheus", lambda: prom_query(
            prom, 'pacs:probe_consecutive_failures{probe="dicom_echo", target="orthanc"} == 0'
                  ' and on(job, instance, probe, target) pacs_probe_success == 1'), 120, stack)
        settle = 35 if prod else 5
        log(f"baseline healthy; letting {settle}s of successful history accumulate")
        time.sleep(settle)
        assert not prom_query(prom, 'ALERTS{alertname="PacsDicomEchoFailing"}'), "echo alert active before the outage"

        # --- outage --------------------------------------------------------------------
        stack.stop("orthanc")
        t0 = time.time()
        log("Orthanc stopped: outage begins")
        hit = wait_for("PacsDicomEchoFailing at the pager webhook",
                       lambda: hook.find("/pager", "PacsDicomEchoFailing", "firing", t0), page_timeout, stack)
        t_page, alert, body = hit
        page_s = t_page - t0
        want = {"alertname": "PacsDicomEchoFailing", "severity": "critical", "probe": "dicom_echo",
                "target": "orthanc", "job": "pacs-agent", "instance": f"127.0.0.1:{ports['agent']}", "site": "e2e"}
        got = alert["labels"]
        assert all(got.get(k) == v for k, v in want.items()), f"labels {got} != expected {want}"
        assert body.get("receiver") == "pager", f"receiver {body.get('receiver')!r}, expected pager"
        ann = alert["annotations"]
        assert ann.get("runbook_url", "").endswith("#pacsdicomechofailing"), ann
        assert "orthanc" in ann.get("description", ""), ann
        log(f"PAGE received after {page_s:.1f}s: {got} — {ann.get('description')}")
        print(f"stack_test: outage-to-page {page_s:.1f} s (probe interval {probe_iv}, scrape/eval {scrape_iv}, "
              f"{'shipped' if prod else 'shortened'} Alertmanager group_wait)", flush=True)
        if budget is not None:
            assert page_s <= budget, f"time to page {page_s:.1f}s exceeds the {budget}s budget"
        leaked = [e for e in hook.events if e[1] == "/pager" and any(
            x["labels"].get("alertname") != "PacsDicomEchoFailing" for x in e[2].get("alerts", []))]
        if leaked:
            log(f"note: other pages during the outage: {[x['labels'] for e in leaked for x in e[2]['alerts']]}")

        # --- recovery ------------------------------------------------------------------
        start_orthanc()
        t1 = time.time()
        log("Orthanc restarted: waiting for the resolve notification")
        t_res, _, _ = wait_for("PacsDicomEchoFailing resolved at the pager webhook",
                               lambda: hook.find("/pager", "PacsDicomEchoFailing", "resolved", t1),
                               page_timeout + 120, stack)
        log(f"RESOLVED received {t_res - t1:.1f}s after Orthanc came back")
        print(f"stack_test: recovery-to-resolve {t_res - t1:.1f} s", flush=True)

        # --- dashboards against this Prometheus ----------------------------------------
        # Every probe that watches Orthanc must have succeeded and been scraped
        # again: a failed run drops its gauges (stale in Prometheus), and the
        # dashboards' instant queries need them back.
        wait_for("fresh probe data after recovery", lambda: all(prom_query(prom, q) for q in (
            'pacs_probe_success{probe="dicom_find", target="orthanc"} == 1',
            'pacs_probe_success{probe="queue_orthanc", target="orthanc-jobs"} == 1',
            'pacs_archive_studies{target="orthanc-jobs"}',
            'pacs_queue_items{probe="queue_orthanc", target="orthanc-jobs"}')), 60, stack)
        rate_iv = "1m" if prod else "30s"
        cmd = [sys.executable, os.path.join(REPO, "scripts", "check-dashboards"), "--prometheus", prom,
               "--rate-interval", rate_iv, "--var", "job=pacs-agent"]
        for pat in REQUIRE_DATA:
            cmd += ["--require-data", pat]
        log("running " + " ".join(cmd[:6]) + " ...")
        r = subprocess.run(cmd)
        assert r.returncode == 0, "check-dashboards failed against the live Prometheus"
        ok = True
        print(f"stack_test: OK (page {page_s:.1f} s, resolve {t_res - t1:.1f} s)")
        return 0
    except AssertionError as e:
        print(f"stack_test: FAILED: {e}", file=sys.stderr)
        for name in ("agent", "orthanc", "prometheus", "alertmanager"):
            stack.tail(name)
        print(f"webhook events: {json.dumps([(round(t, 1), p, [x['labels'].get('alertname') + ':' + x['status'] for x in b.get('alerts', [])]) for t, p, b in hook.events])}")
        return 1
    except Exception as e:  # noqa: BLE001 — report, then clean up like any failure
        import traceback
        traceback.print_exc()
        print(f"stack_test: FAILED: {e!r}", file=sys.stderr)
        for name in ("agent", "orthanc", "prometheus", "alertmanager"):
            stack.tail(name)
        return 1
    except KeyboardInterrupt as e:
        print(f"stack_test: interrupted ({e}); cleaning up", file=sys.stderr)
        return 130
    finally:
        tear_down(stack, hook, tmp, keep=a.keep or not ok)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
