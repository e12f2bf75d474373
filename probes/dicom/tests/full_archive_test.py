#!/usr/bin/env python3
"""A full archive, end to end (stdlib only; needs root for a private mount namespace).

Orthanc runs with its storage folder on a small tmpfs that is full, in a mount namespace of
its own (unshare -m; the host's mounts are untouched). The agent runs in the same namespace
(so its filesystem probe sees the volume, as on a real PACS node) with the image checks
(store, retrieve by C-MOVE to its own SCP, commit with the report on a new association),
C-ECHO, C-FIND and a filesystem target on the storage folder. A Prometheus on 127.0.0.1
scrapes it every second and evaluates the shipped rules (alerts/*.rules.yml, unchanged).

Two layouts, as found on real Orthanc installations:
  shared        storage folder and SQLite index on the full volume (Debian's default
                /var/lib/orthanc/db): C-STORE is refused with 0xA700; the store check fails and
                PacsDicomStoreFailing (critical) fires in Prometheus: the page is end to end.
  storage-only  index elsewhere: Orthanc answers C-STORE with success, writes an empty file and
                serves the object from its storage cache: store, retrieve and commit succeed
                while images are lost. Only the volume's free space tells: the filesystem
                probe exports avail_bytes 0 and PacsFilesystemAlmostOutOfSpace (critical, for
                15 minutes) goes pending in Prometheus. That it then fires is proven by promtool
                with these very series (alerts/tests/images_test.yml; 15 minutes are too long
                for this test). After Orthanc restarts, a C-GET of an object stored while full
                fails with 0xC000: the files are empty.

Usage: full_archive_test.py AGENT_BINARY [--keep]      exit 77 (skipped) when not root.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
UID_ROOT = "1.2.826.0.1.3680043.10.999"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../..", "tests", "support"))
from ports import free_port  # noqa: E402  (a port no outgoing connection can take meanwhile)


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def metric(text, series):
    """Value of one series of a Prometheus exposition, or None. `series` is the name and the
    labels to match, e.g. 'm{a="1",b="2"}'; the series may carry more labels."""
    name, _, want = series.partition("{")
    want = [w for w in want.rstrip("}").split(",") if w]
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels = line[len(name):].split("}")[0]
            if all(w in labels for w in want):
                return float(line.split()[-1])
    return None


class Procs:
    def __init__(self, tmp):
        self.tmp, self.procs = tmp, []

    def start(self, name, argv):
        logf = open(os.path.join(self.tmp, f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, cwd=self.tmp, start_new_session=True)
        self.procs.append((name, p))
        return p

    def stop(self, p):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for _, p in reversed(self.procs):
            self.stop(p)

    def tail(self, name, n=30):
        path = os.path.join(self.tmp, f"{name}.log")
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                print(f"---- {name}.log ----\n" + "".join(f.readlines()[-n:]), end="")


def wait_for(what, fn, timeout, interval=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            v = fn()
            if v:
                return v
        except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last})" if last else ""))


def run_layout(layout, agent_bin, tmp):
    procs = Procs(tmp)
    store = os.path.join(tmp, "storage")
    index = store if layout == "shared" else os.path.join(tmp, "index")
    os.makedirs(store)
    os.makedirs(index, exist_ok=True)
    try:
        # The namespace: a small tmpfs on the storage folder, visible only inside.
        holder = procs.start("holder", ["unshare", "-m", "--propagation", "private", "sh", "-c",
                                        f"mount -t tmpfs -o size=2m tmpfs {store} && echo mounted && exec sleep 3600"])
        wait_for("the tmpfs", lambda: "mounted" in open(os.path.join(tmp, "holder.log")).read(), 10, 0.1)
        ns = ["nsenter", f"--mount=/proc/{holder.pid}/ns/mnt"]

        dicom_port, http_port, scp_port, agent_port, prom_port = (free_port() for _ in range(5))
        with open(os.path.join(tmp, "orthanc.json"), "w") as f:
            json.dump({"Name": "FullArchive", "StorageDirectory": store, "IndexDirectory": index, "Plugins": [],
                       "HttpPort": http_port, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
                       "DicomAet": "ORTHANC", "DicomPort": dicom_port, "DicomCheckCalledAet": True,
                       "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True, "DicomAlwaysAllowFind": True,
                       "DicomAlwaysAllowGet": True, "DicomAlwaysAllowMove": True, "SaveJobs": False,
                       "DicomModalities": {"agent": ["PACS_AGENT", "127.0.0.1", scp_port]}}, f)

        def start_orthanc():
            p = procs.start("orthanc", ns + ["Orthanc", os.path.join(tmp, "orthanc.json")])
            wait_for("Orthanc", lambda: get(f"http://127.0.0.1:{http_port}/system"), 30)
            return p

        orthanc = start_orthanc()
        # Fill the volume (whatever Orthanc created there first stays).
        subprocess.run(ns + ["sh", "-c", f"dd if=/dev/zero of={store}/fill bs=16k 2>/dev/null; df -k {store}"],
                       check=False, stdout=open(os.path.join(tmp, "fill.log"), "w"), stderr=subprocess.STDOUT)
        log(f"{layout}: volume full: " + open(os.path.join(tmp, "fill.log")).read().strip().splitlines()[-1])

        with open(os.path.join(tmp, "agent.toml"), "w") as f:
            f.write(f"""[agent]
calling_ae_title = "PACS_AGENT"

[[dicom]]
name = "archive"
host = "127.0.0.1"
port = {dicom_port}
called_ae_title = "ORTHANC"
checks = ["echo", "find", "store", "retrieve", "commit"]
interval = "2s"
timeout = "2s"
  [dicom.find]
  keys = {{}}
  [dicom.store]
  uid_root = "{UID_ROOT}"
  cleanup = {{ type = "none" }}
  [dicom.retrieve]
  method = "move"
  listen_address = "127.0.0.1"
  listen_port = {scp_port}
  [dicom.commit]
  listen_address = "127.0.0.1"
  listen_port = {scp_port}

[[filesystem]]
name = "orthanc-storage"
path = "{store}"
interval = "1s"
""")
        agent = procs.start("agent", ns + [agent_bin, f"--config.file={tmp}/agent.toml",
                                           f"--web.listen-address=127.0.0.1:{agent_port}"])
        wait_for("the agent", lambda: get(f"http://127.0.0.1:{agent_port}/-/ready"), 15)

        rules = sorted(os.path.join(REPO, "alerts", f) for f in os.listdir(os.path.join(REPO, "alerts"))
                       if f.endswith(".rules.yml"))
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "rule_files:\n" + "".join(f"  - {r}\n" for r in rules) +
                    f"scrape_configs:\n  - job_name: pacs-agent\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{agent_port}']\n")
        procs.start("prometheus", ["prometheus", f"--config.file={tmp}/prometheus.yml",
                                   f"--storage.tsdb.path={tmp}/tsdb", f"--web.listen-address=127.0.0.1:{prom_port}"])
        prom = f"http://127.0.0.1:{prom_port}"
        wait_for("Prometheus", lambda: get(f"{prom}/-/ready"), 30)

        def alerts(name, state):
            q = urllib.parse.urlencode({"query": f'ALERTS{{alertname="{name}",alertstate="{state}"}}'})
            return json.loads(get(f"{prom}/api/v1/query?{q}"))["data"]["result"]

        def m(series):
            return metric(get(f"http://127.0.0.1:{agent_port}/metrics"), series)

        def ok(probe):
            return m(f'pacs_probe_success{{probe="{probe}",target="archive"}}')

        # Let every check run a few times.
        wait_for("5 store runs", lambda: (m('pacs_probe_runs_total{probe="dicom_store",target="archive"}') or 0) >= 5,
                 60)
        wait_for("retrieve and commit runs",
                 lambda: (m('pacs_probe_runs_total{probe="dicom_commit",target="archive"}') or 0) >= 3, 60)
        seen = {p: ok(p) for p in ("dicom_echo", "dicom_find", "dicom_store", "dicom_retrieve", "dicom_commit")}
        avail = m('pacs_filesystem_avail_bytes{probe="filesystem",target="orthanc-storage"}')
        size = m('pacs_filesystem_size_bytes{probe="filesystem",target="orthanc-storage"}')
        log(f"{layout}: success {seen}; filesystem avail {avail} of {size} bytes")
        assert seen["dicom_echo"] == 1 and seen["dicom_find"] == 1, seen
        assert avail == 0, f"the volume is not full: avail {avail}"

        if layout == "shared":
            status = m('pacs_dicom_dimse_status{probe="dicom_store",target="archive"}')
            fails = m('pacs_probe_failures_total{probe="dicom_store",target="archive",reason="dimse_status"}')
            log(f"shared: store dimse_status {status}, failures(dimse_status) {fails}")
            assert seen["dicom_store"] == 0 and status == 0xA700, (seen, status)
            assert seen["dicom_retrieve"] == 0 and seen["dicom_commit"] == 0, seen
            t0 = time.time()
            fired = wait_for("PacsDicomStoreFailing firing", lambda: alerts("PacsDicomStoreFailing", "firing"), 90)
            lab = fired[0]["metric"]
            assert lab["severity"] == "critical" and lab["target"] == "archive", lab
            log(f"shared: PacsDicomStoreFailing (critical) firing in Prometheus after {time.time() - t0:.0f}s more")
        else:
            assert seen["dicom_store"] == 1 and seen["dicom_retrieve"] == 1 and seen["dicom_commit"] == 1, \
                f"Orthanc is expected to answer everything from its cache: {seen}"
            inst = m('pacs_dicom_retrieve_instances{probe="dicom_retrieve",target="archive"}')
            assert inst == 1, inst
            empty = subprocess.run(ns + ["find", store, "-type", "f", "-size", "0"], capture_output=True, text=True)
            n_empty = len(empty.stdout.split())
            log(f"storage-only: every check succeeds; {n_empty} empty files in the storage folder")
            assert n_empty >= 3, empty.stdout
            pending = wait_for("PacsFilesystemAlmostOutOfSpace pending",
                               lambda: [a for a in alerts("PacsFilesystemAlmostOutOfSpace", "pending")
                                        if a["metric"]["severity"] == "critical"], 30)
            log(f"storage-only: PacsFilesystemAlmostOutOfSpace (critical) pending: {pending[0]['metric']}; "
                f"series pacs_filesystem_avail_bytes={avail:.0f} pacs_filesystem_size_bytes={size:.0f} "
                f"pacs_filesystem_readonly=0 (promtool fires it after 15 minutes of these)")
            assert not alerts("PacsDicomStoreFailing", "firing") and not alerts("PacsDicomStoreFailing", "pending")
            # After a restart, objects written while full are lost: C-GET of one fails.
            studies = json.loads(get(f"http://127.0.0.1:{http_port}/studies?expand"))
            uid = studies[0]["MainDicomTags"]["StudyInstanceUID"]
            procs.stop(agent)
            procs.stop(orthanc)
            start_orthanc()
            out = subprocess.run(["getscu", "-v", "-aet", "PACS_AGENT", "-aec", "ORTHANC", "-od", tmp,
                                  "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid}",
                                  "127.0.0.1", str(dicom_port)], capture_output=True, text=True)
            log("storage-only, after restart: getscu of a canary stored while full: " +
                [l for l in (out.stdout + out.stderr).splitlines() if "C-GET Response" in l][-1].strip())
            assert "UnableToProcess" in out.stdout + out.stderr, out.stdout + out.stderr
    except Exception:
        for name in ("agent", "orthanc", "prometheus", "holder"):
            procs.tail(name)
        raise
    finally:
        procs.stop_all()


def main(argv):
    if os.geteuid() != 0:
        print("skipped: needs root for a private mount namespace (unshare -m)")
        return 77
    for tool in ("unshare", "nsenter", "Orthanc", "prometheus", "getscu"):
        if not shutil.which(tool):
            print(f"{tool} not found")
            return 1
    agent_bin = os.path.abspath(argv[1] if len(argv) > 1 else os.environ.get("PACS_AGENT_BINARY", "build/pacs-agent"))
    keep = "--keep" in argv
    ok = True
    for layout in ("shared", "storage-only"):
        tmp = tempfile.mkdtemp(prefix=f"pacs-full-{layout}-")
        try:
            run_layout(layout, agent_bin, tmp)
            log(f"{layout}: OK")
        except AssertionError as e:
            ok = False
            log(f"{layout}: FAILED: {e}")
        finally:
            if not keep:
                shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main(sys.argv))
