#!/usr/bin/env python3
"""The status page and a target page as a browser renders them (headless Chromium), stdlib only.

Starts on free 127.0.0.1 ports, in a temp dir: Orthanc with two studies dated today, a
second Orthanc speaking DICOM-TLS with a certificate valid for 200 days, a JSON endpoint,
a spool folder with three files, and pacs-agent watching all of them (echo, find, TLS
echo, filesystem, Orthanc jobs, http_json, directory, and a spool folder that does not
exist). Loads `/` in Chromium (--dump-dom) and checks, row by row, the figure an admin
looks for against what the peers really hold: matches, phase timings, days until the
certificate expires, free space and percent and inodes (against os.statvfs), items and
their size, jobs and studies, the JSON value. Then the failing target's page: its last
failure with the transcript. Saves screenshots at phone and desktop width.

Usage: status_page_browser_test.py AGENT_BINARY [--screenshots DIR] [--keep]
"""
import argparse
import datetime
import html.parser
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ORTHANC_AET, TLS_AET = "ORTHANC_UI", "ORTHANC_TLS"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..", "tests", "support"))
from ports import free_port  # noqa: E402  (a port no outgoing connection can take meanwhile)


def get(url, data=None, headers=None, timeout=10):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", "replace")


def wait_for(what, fn, timeout, procs):
    end, last = time.time() + timeout, None
    while time.time() < end:
        for name, p in procs.items():
            if p.poll() is not None:
                raise AssertionError(f"{name} exited with {p.returncode}")
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 — keep polling, report the last one
            last = e
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last!r})" if last else ""))


class Dom(html.parser.HTMLParser):
    """Rows of the probes table: {(probe, target): {"status": ..., "figs": [(metric, text)]}}; plus scripts."""

    def __init__(self):
        super().__init__()
        self.rows, self.row, self.fig, self.status, self.scripts, self.pre = {}, None, None, None, 0, []
        self.in_pre = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "tr" and "data-probe" in a:
            self.row = {"status": "", "figs": []}
            self.rows[(a["data-probe"], a["data-target"])] = self.row
        if self.row is not None and tag == "span" and a.get("class") == "fig":
            self.fig = [a.get("data-metric", ""), ""]
        if self.row is not None and tag == "td" and "status" in (a.get("class") or "").split():
            self.status = ""
        if tag == "pre":
            self.in_pre = True
            self.pre.append("")

    def handle_endtag(self, tag):
        if tag == "span" and self.fig is not None:
            self.row["figs"].append((self.fig[0], " ".join(self.fig[1].split())))
            self.fig = None
        if tag == "td" and self.status is not None:
            self.row["status"] = self.status.strip()
            self.status = None
        if tag == "tr":
            self.row = None
        if tag == "pre":
            self.in_pre = False

    def handle_data(self, data):
        if self.fig is not None:
            self.fig[1] += data
        if self.status is not None:
            self.status += data
        if self.in_pre:
            self.pre[-1] += data


def chromium(args, tmp):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        raise AssertionError("chromium not found (Debian package chromium)")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={os.path.join(tmp, 'chromium')}"] + args
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=180)
    if p.returncode != 0:
        raise AssertionError(f"chromium failed ({p.returncode}): {p.stderr.decode()[-2000:]}")
    return p.stdout.decode("utf-8", "replace")


def make_pki(d):
    def sh(*a):
        subprocess.run(a, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p = lambda n: os.path.join(d, n)  # noqa: E731
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca.key"), "-out", p("ca.crt"),
       "-days", "3650", "-subj", "/CN=pacs-ui-test-ca")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", p("server.key"), "-out", p("server.csr"),
       "-subj", "/CN=127.0.0.1")
    sh("openssl", "x509", "-req", "-in", p("server.csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
       "-CAcreateserial", "-out", p("server.crt"), "-days", "200")
    return p("ca.crt"), p("server.crt"), p("server.key")


def orthanc_config(tmp, name, aet, dicom_port, http_port, extra=None):
    db = os.path.join(tmp, f"{name}-db")
    os.makedirs(db)
    cfg = {"Name": name, "DicomAet": aet, "DicomPort": dicom_port, "HttpPort": http_port,
           "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "StorageDirectory": db,
           "IndexDirectory": db, "DicomCheckCalledAet": True, "DicomAlwaysAllowEcho": True,
           "DicomAlwaysAllowFind": True, "DicomModalities": {"agent": ["PACS_AGENT", "127.0.0.1", 1]},
           "Plugins": [], "HttpServerEnabled": True, "DicomServerEnabled": True}
    cfg.update(extra or {})
    path = os.path.join(tmp, f"{name}.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def upload_study(tmp, orthanc_http, i):
    today = datetime.date.today().strftime("%Y%m%d")
    root = f"1.2.826.0.1.3680043.8.498.{int(time.time())}.{i}"
    dump = os.path.join(tmp, f"study{i}.dump")
    with open(dump, "w") as f:
        f.write(f"(0008,0016) UI =SecondaryCaptureImageStorage\n(0008,0018) UI [{root}.1.1]\n"
                f"(0008,0020) DA [{today}]\n(0008,0060) CS [OT]\n(0010,0010) PN [Canary^Patient{i}]\n"
                f"(0010,0020) LO [UI{i:04d}]\n(0020,000d) UI [{root}]\n(0020,000e) UI [{root}.1]\n")
    dcm = dump[:-5] + ".dcm"
    subprocess.run(["dump2dcm", "+te", dump, dcm], check=True)
    with open(dcm, "rb") as f:
        status, _ = get(f"{orthanc_http}/instances", f.read(), {"Content-Type": "application/dicom"})
    assert status == 200


def check_rows(rows, tmp, spool_bytes):
    """The figure of every row, against the peers."""
    def figs(probe, target):
        assert (probe, target) in rows, f"no row for {probe}/{target}; rows: {sorted(rows)}"
        row = rows[(probe, target)]
        assert row["figs"], f"{probe}/{target} shows no figure"
        return row

    def one(row, metric):
        got = [t for m, t in row["figs"] if m == metric]
        assert got, f"no {metric} figure in {row}"
        return got

    r = figs("dicom_echo", "orthanc")
    assert r["status"] == "OK", r
    phases = " ".join(one(r, "pacs_dicom_phase_duration_seconds"))
    for ph in ("connect", "associate", "dimse", "release"):
        assert re.search(ph + r"\)? [0-9.]+ (ms|s)", phases), f"phase {ph} missing in {phases!r}"

    r = figs("dicom_find", "orthanc")
    assert any(re.fullmatch(r"(find )?matches 2", t) for t in one(r, "pacs_dicom_find_matches")), r

    r = figs("dicom_echo", "orthanc-tls")
    assert r["status"] == "OK", r
    cert = one(r, "pacs_dicom_tls_cert_expiry_timestamp_seconds")[0]
    assert re.search(r"in (199|200) days$", cert), cert

    r = figs("filesystem", "volume")
    st = os.statvfs(tmp)
    pct = st.f_bavail / st.f_blocks * 100
    free = one(r, "pacs_filesystem_avail_bytes")[0]
    m = re.fullmatch(r"free [0-9.]+ [KMGTP]iB \(([0-9.]+)%\)", free)
    assert m and abs(float(m.group(1)) - pct) < 0.5, f"{free!r} vs statvfs {pct:.1f}%"
    inodes = one(r, "pacs_filesystem_files_free")[0]
    if st.f_files:
        m = re.fullmatch(r"inodes free [0-9]+ \(([0-9.]+)%\)", inodes)
        assert m and abs(float(m.group(1)) - st.f_ffree / st.f_files * 100) < 0.5, inodes

    r = figs("queue_directory", "spool")
    assert one(r, "pacs_queue_items") == ["items 3"], r
    assert one(r, "pacs_queue_bytes") == [f"size {spool_bytes} B"], r
    assert re.fullmatch(r"oldest [0-9.]+ (ms|s|min)", one(r, "pacs_queue_oldest_item_age_seconds")[0]), r

    r = figs("queue_orthanc", "orthanc-jobs")
    assert one(r, "pacs_archive_studies") == ["studies 2"], r
    assert re.fullmatch(r"jobs .+", one(r, "pacs_queue_items")[0]), r

    r = figs("queue_http_json", "json")
    assert one(r, "pacs_queue_json_value") == ["depth 7"], r

    r = rows[("queue_directory", "gone")]
    assert r["status"] == "FAIL", r


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("agent")
    ap.add_argument("--screenshots", help="directory for status-phone.png, status-desktop.png, target-phone.png")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args(argv)
    a.agent = os.path.abspath(a.agent)
    if not os.access(a.agent, os.X_OK):
        print(f"status_page_browser_test: agent binary not executable: {a.agent}", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="pacs-ui-")
    procs, ok = {}, False
    json_srv = None
    try:
        ports = {k: free_port() for k in ("dicom", "http", "tls_dicom", "tls_http", "agent")}
        orthanc = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
        ca, crt, key = make_pki(tmp)

        def start(name, argv_):
            logf = open(os.path.join(tmp, f"{name}.log"), "wb")
            procs[name] = subprocess.Popen(argv_, stdout=logf, stderr=subprocess.STDOUT, cwd=tmp,
                                           start_new_session=True)

        start("orthanc", [orthanc, orthanc_config(tmp, "plain", ORTHANC_AET, ports["dicom"], ports["http"])])
        start("orthanc-tls", [orthanc, orthanc_config(
            tmp, "tls", TLS_AET, ports["tls_dicom"], ports["tls_http"],
            {"DicomTlsEnabled": True, "DicomTlsCertificate": crt, "DicomTlsPrivateKey": key,
             "DicomTlsTrustedCertificates": ca, "DicomTlsRemoteCertificateRequired": False})])
        http_base = f"http://127.0.0.1:{ports['http']}"
        for name, port in (("orthanc", ports["http"]), ("orthanc-tls", ports["tls_http"])):
            wait_for(f"{name} REST", lambda p=port: get(f"http://127.0.0.1:{p}/system")[0] == 200, 60, procs)
        for i in (1, 2):
            upload_study(tmp, http_base, i)

        class Json(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b'{"queue": {"depth": 7}}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_):
                pass
        json_srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Json)
        threading.Thread(target=json_srv.serve_forever, daemon=True).start()

        spool = os.path.join(tmp, "spool")
        os.makedirs(spool)
        sizes = (100, 200, 300)
        for i, n in enumerate(sizes):
            with open(os.path.join(spool, f"Canary^Patient_{i}.dcm"), "wb") as f:
                f.write(b"x" * n)

        cfg = os.path.join(tmp, "agent.toml")
        with open(cfg, "w") as f:
            f.write(f"""[agent]
calling_ae_title = "PACS_AGENT"
interval = "2s"
timeout = "2s"

[[dicom]]
name = "orthanc"
host = "127.0.0.1"
port = {ports['dicom']}
called_ae_title = "{ORTHANC_AET}"
checks = ["echo", "find"]
  [dicom.find]
  level = "STUDY"
  keys = {{ StudyDate = "today" }}

[[dicom]]
name = "orthanc-tls"
host = "127.0.0.1"
port = {ports['tls_dicom']}
called_ae_title = "{TLS_AET}"
  [dicom.tls]
  ca_file = "{ca}"

[[filesystem]]
name = "volume"
path = "{tmp}"

[[queue]]
name = "spool"
type = "directory"
path = "{spool}"

[[queue]]
name = "gone"
type = "directory"
path = "{os.path.join(tmp, 'no-such-spool')}"

[[queue]]
name = "orthanc-jobs"
type = "orthanc"
url = "{http_base}"
state_file = "{os.path.join(tmp, 'orthanc-jobs.orthanc-changes.json')}"

[[queue]]
name = "json"
type = "http_json"
url = "http://127.0.0.1:{json_srv.server_address[1]}/status"
values = [{{ name = "depth", pointer = "/queue/depth" }}]
""")
        agent_url = f"http://127.0.0.1:{ports['agent']}"
        start("agent", [a.agent, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{ports['agent']}"])
        want = [("dicom_echo", "orthanc"), ("dicom_find", "orthanc"), ("dicom_echo", "orthanc-tls"),
                ("filesystem", "volume"), ("queue_directory", "spool"), ("queue_orthanc", "orthanc-jobs"),
                ("queue_http_json", "json")]

        def all_ran():
            _, m = get(f"{agent_url}/metrics")
            return all(f'pacs_probe_success{{probe="{p}",target="{t}"}} 1' in m for p, t in want) and \
                'pacs_probe_success{probe="queue_directory",target="gone"} 0' in m
        wait_for("every probe to have run (and succeeded, but 'gone')", all_ran, 90, procs)

        # --- the status page, as Chromium builds it --------------------------------------
        dom = chromium(["--dump-dom", agent_url + "/"], tmp)
        d = Dom()
        d.feed(dom)
        assert d.scripts == 0, "the status page must work without JavaScript"
        assert len(d.rows) == len(want) + 1, f"rows {sorted(d.rows)}"
        check_rows(d.rows, tmp, sum(sizes))
        assert "Canary" not in dom, "a spool file name (PHI) reached the status page"
        log("status page: every row shows its figures: " + "; ".join(
            f"{p}/{t}: " + ", ".join(x for _, x in r["figs"]) for (p, t), r in sorted(d.rows.items())))

        # --- a failing target's page: its last failure, with the transcript --------------
        tdom = chromium(["--dump-dom", agent_url + "/target?name=gone"], tmp)
        t = Dom()
        t.feed(tdom)
        assert "Last failure" in tdom, tdom
        assert t.pre and re.search(r"scan  .*no-such-spool\n.*counted  0 files, 0 bytes, first error: No such file",
                                   t.pre[0], re.S), t.pre
        assert "failed  io_error" in t.pre[0], t.pre[0]
        assert "Canary" not in tdom, "a spool file name (PHI) reached the target page"

        if a.screenshots:
            os.makedirs(a.screenshots, exist_ok=True)
            for name, url, size in (("status-phone.png", "/", "412,1800"), ("status-desktop.png", "/", "1500,900"),
                                    ("target-phone.png", "/target?name=gone", "412,1400")):
                out = os.path.join(os.path.abspath(a.screenshots), name)
                chromium([f"--screenshot={out}", f"--window-size={size}", agent_url + url], tmp)
                assert os.path.getsize(out) > 1000, out
                log(f"screenshot {out}")
        ok = True
        print("status_page_browser_test: OK")
        return 0
    except AssertionError as e:
        print(f"status_page_browser_test: FAILED: {e}", file=sys.stderr)
        for name in procs:
            path = os.path.join(tmp, f"{name}.log")
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    print(f"---- {name}.log ----\n" + "".join(f.readlines()[-20:]), file=sys.stderr)
        return 1
    finally:
        for name, p in reversed(list(procs.items())):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if json_srv:
            json_srv.shutdown()
        if a.keep or not ok:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
