#!/usr/bin/env python3
"""End-to-end: two sites → vmagent (disk buffer) → VictoriaMetrics → vmalert → Alertmanager.

The central chain of docs/scaling.md, all on free 127.0.0.1 ports in a temp dir, every
process started and stopped here:

  site A: Orthanc + pacs-agent as a typical node (5 AEs — one of them with a wrong called
          AE title, so the peer rejects it —, 3 volumes, Orthanc jobs and 2 spool folders)
  site B: Orthanc + pacs-agent (1 AE with echo + find, 1 volume)
  each site: vmagent with the shipped deploy/fleet/vmagent.yml and vmagent.default
             (external_labels site=A / site=B, the shipped on-disk buffer settings)
  central: VictoriaMetrics (deploy/fleet/victoria-metrics.default), vmalert with the
           shipped rule files unchanged and deploy/fleet/vmalert.default, Alertmanager with
           the shipped deploy/alertmanager/alertmanager.yml (receivers → webhook sink here)

Asserts:
  1. Site B's Orthanc stops → PacsDicomEchoFailing reaches the pager with site="B"; nothing
     of the kind for site A (whose rejecting AE must not page either); it resolves.
  2. Every panel query of every shipped dashboard runs on VictoriaMetrics (scripts/
     check-dashboards, as Grafana sends them: no nocache) and returns data, except
     EXEMPT below.
  3. VictoriaMetrics stopped for OUTAGE_S seconds and started again loses no sample: the
     agent's own /metrics request counter, exported raw from VictoriaMetrics, steps by
     exactly one scrape per sample across the whole outage, for both sites.
  It also measures the disk buffer's bytes per sample and prints what the shipped
  -remoteWrite.maxDiskUsagePerURL survives (docs/scaling.md).

Timing (shortened, the rule expressions are the shipped ones): probes 2-3 s, scrapes 1 s,
evaluation 1 s, Alertmanager group_wait 1 s (stack_test.py's fast mode).

Usage: fleet_test.py [AGENT_BINARY] [--keep] [--outage SECONDS]   (or PACS_AGENT_BINARY=...)
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

import yaml  # Debian python3-yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack_test import (REPO, REQUIRE_DATA, Stack, Webhook, free_port, http_req,  # noqa: E402
                        interrupt_on_signals, log, make_studies, render_alertmanager, tear_down, wait_for,
                        write_orthanc_config)

FLEET = os.path.join(REPO, "deploy", "fleet")
ORTHANC_AET = "ORTHANC_E2E"
SCRAPE_S = 1
OUTAGE_S = 120
# Panels that may stay empty here, and why (stack_test.py exempts the same two, and more):
EXEMPT = {
    # needs a DICOM-TLS peer; the Orthanc in this test speaks plain DICOM
    "pacs-ae-detail:TLS certificate validity",
    # pacs:filesystem_days_until_full needs hours of steady growth (6 h deriv); minutes of
    # a temp volume are noise, and a shrinking volume rightly has no value
    "pacs-storage-capacity:Days until full",
}
# Panels stack_test.py exempts that this test makes data for: the rejecting AE of site A
# (Association rejects), a failed Orthanc job at site A (Failed jobs), and the dashboards
# are checked while site B's page is firing (Firing PACS alerts, from vmalert's ALERTS).
EXTRA_REQUIRED = ["pacs-ae-detail:Association rejects", "pacs-storage-capacity:Failed jobs",
                  "pacs-fleet-overview:Firing PACS alerts"]
TYPICAL_SCRAPE_S = 15     # production scrape interval (deploy/fleet/vmagent.yml)


def default_args(path):
    """ARGS="..." of a shipped /etc/default file, split as the systemd unit's $ARGS is."""
    with open(path) as f:
        for line in f:
            m = re.match(r"^ARGS=(.*)$", line.strip())
            if m:
                return " ".join(shlex.split(m.group(1))).split()
    raise AssertionError(f"{path}: no ARGS= line")


def set_flags(args, **repl):
    """args with -name=value replaced (names with '.' given as '__'); each must exist."""
    out, seen = [], set()
    for a in args:
        name = a.lstrip("-").split("=", 1)[0]
        key = name.replace(".", "__")
        if key in repl:
            seen.add(key)
            v = repl[key]
            out.extend(f"-{name}={x}" for x in (v if isinstance(v, list) else [v]))
        else:
            out.append(a)
    missing = set(repl) - seen
    assert not missing, f"shipped ARGS lack {sorted(missing)}: {args}"
    return out


def parse_size(s):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(KB|MB|GB|KiB|MiB|GiB)?", s)
    assert m, f"cannot parse size {s!r}"
    mult = {None: 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m.group(2)]
    return float(m.group(1)) * mult


def vm_query(vm, expr):
    """Instant query with nocache=1: the newest samples, as vmalert sees them."""
    _, body = http_req("GET", f"{vm}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "nocache": "1"}))
    return json.loads(body)["data"]["result"]


def vm_export(vm, match, start, end):
    """Raw samples [(ts_seconds, value)] per series (label set as a frozenset)."""
    q = urllib.parse.urlencode({"match[]": match, "start": f"{start:.3f}", "end": f"{end:.3f}"})
    _, body = http_req("GET", f"{vm}/api/v1/export?{q}", timeout=30)
    out = {}
    for line in body.decode().splitlines():
        if line.strip():
            s = json.loads(line)
            pts = sorted(zip((t / 1000 for t in s["timestamps"]), s["values"]))
            out.setdefault(frozenset(s["metric"].items()), []).extend(pts)
    return out


def metrics(url):
    """A Prometheus text exposition as {series text: value} (vmagent's own /metrics)."""
    _, body = http_req("GET", url + "/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def metric_sum(m, name):
    return sum(v for k, v in m.items() if k == name or k.startswith(name + "{"))


def agent_config(site, port, orthanc_dicom, orthanc_http, tmp):
    """Site A: a typical node (5 AEs, 3 volumes, 3 queues). Site B: 1 AE + 1 volume."""
    head = f"""[agent]
calling_ae_title = "PACS_AGENT"
interval = "2s"
timeout = "1s"

[web]
listen_address = "127.0.0.1:{port}"
"""
    def dicom(name, aet, checks, interval, timeout):
        return f"""
[[dicom]]
name = "{name}"
host = "127.0.0.1"
port = {orthanc_dicom}
called_ae_title = "{aet}"
checks = {json.dumps(checks)}
interval = "{interval}"
timeout = "{timeout}"
  [dicom.find]
  level = "STUDY"
  keys = {{ StudyDate = "today" }}
"""
    def volume(name):
        path = os.path.join(tmp, f"site{site}", name)
        os.makedirs(path, exist_ok=True)
        return f'\n[[filesystem]]\nname = "{name}"\npath = "{path}"\n'

    def spool(name, files):
        path = os.path.join(tmp, f"site{site}", name)
        os.makedirs(path, exist_ok=True)
        for i in range(files):
            with open(os.path.join(path, f"waiting{i}.dcm"), "wb") as f:
                f.write(b"\0" * 1024)
        return f'\n[[queue]]\nname = "{name}"\ntype = "directory"\npath = "{path}"\n'

    if site == "B":
        return head + dicom("archive", ORTHANC_AET, ["echo", "find"], "2s", "1s") + volume("images")
    text = head
    for name in ("archive", "router", "ris", "viewer"):
        text += dicom(name, ORTHANC_AET, ["echo", "find"], "3s", "2s")
    # Registered under the wrong called AE title: Orthanc rejects the association
    # (permanent, reason 7). A configuration error, never a page (PacsDicomEchoFailing
    # excludes permanent rejects); it fills the "Association rejects" panel.
    text += dicom("misnamed", "NOT_" + ORTHANC_AET, ["echo", "find"], "3s", "2s")
    for name in ("images", "index", "cache"):
        text += volume(name)
    text += f'\n[[queue]]\nname = "orthanc-jobs"\ntype = "orthanc"\nurl = "{orthanc_http}"\n'
    text += spool("incoming", 2) + spool("outgoing", 1)
    return text


def vmagent_config(site, agent_addr, dicom_names):
    """The shipped vmagent.yml for this site: its site label, its agent, 1 s scrapes."""
    with open(os.path.join(FLEET, "vmagent.yml")) as f:
        cfg = yaml.safe_load(f)
    cfg["global"].update(scrape_interval=f"{SCRAPE_S}s", scrape_timeout=f"{SCRAPE_S}s")
    cfg["global"]["external_labels"]["site"] = site
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    agent = jobs["pacs-agent"]
    agent.pop("file_sd_configs")
    agent["static_configs"][0]["targets"] = [agent_addr]
    probe = jobs["pacs-agent-probe"]
    probe.update(scrape_interval="5s", scrape_timeout="4s")
    probe["static_configs"][0].update(targets=dicom_names, labels={"agent": agent_addr})
    return yaml.safe_dump(cfg, sort_keys=False)


def sample_gaps(vm, site, t_from, t_to):
    """The agent counts every /metrics request; vmagent is its only client. Across
    [t_from, t_to] each stored sample must be exactly one scrape after the previous one (a
    failed scrape, stored as up == 0, may or may not have reached the agent). Returns
    (problems, number of samples, summary)."""
    sel = f'site="{site}", job="pacs-agent"'
    counter = vm_export(vm, f'pacs_agent_http_requests_total{{{sel}, handler="metrics", code="200"}}', t_from, t_to)
    ups = vm_export(vm, f'up{{{sel}}}', t_from, t_to)
    if len(counter) != 1 or len(ups) != 1:
        return [f"expected one series each, got {len(counter)} and {len(ups)}"], 0, ""
    pts, up = next(iter(counter.values())), next(iter(ups.values()))
    failed = [t for t, v in up if v == 0]
    ok_scrapes = sum(1 for _, v in up if v == 1)
    problems = []
    for (t1, v1), (t2, v2) in zip(pts, pts[1:]):
        between = sum(1 for t in failed if t1 < t < t2)
        if not 1 <= v2 - v1 <= 1 + between:
            problems.append(f"{time.strftime('%H:%M:%S', time.localtime(t1))}+{t2 - t1:.1f}s: "
                            f"counter {v1:.0f} -> {v2:.0f} ({v2 - v1 - 1:.0f} scrape(s) missing)")
    if len(pts) != ok_scrapes:                  # one counter sample per successful scrape
        problems.append(f"{len(pts)} counter samples, {ok_scrapes} successful scrapes")
    if not pts or pts[0][0] > t_from + 5 or pts[-1][0] < t_to - 5:
        problems.append(f"samples do not cover the window ({len(pts)} samples)")
    by_clock = (t_to - t_from) / SCRAPE_S
    summary = (f"{len(pts)} samples over {pts[-1][0] - pts[0][0]:.0f}s (counter {pts[0][1]:.0f} -> "
               f"{pts[-1][1]:.0f}), {ok_scrapes} successful and {len(failed)} failed scrapes stored, "
               f"{by_clock:.0f} scrape intervals") if pts else "no samples"
    return problems, len(pts), summary


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("agent", nargs="?", default=os.environ.get("PACS_AGENT_BINARY"))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    ap.add_argument("--outage", type=int, default=OUTAGE_S, help="seconds VictoriaMetrics stays down")
    a = ap.parse_args(argv)
    if not a.agent or not os.access(a.agent, os.X_OK):
        print(f"fleet_test: agent binary not found/executable: {a.agent!r} (argument or PACS_AGENT_BINARY)",
              file=sys.stderr)
        return 2
    for tool in ("Orthanc", "victoria-metrics", "vmagent", "vmalert", "prometheus-alertmanager", "dump2dcm"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            print(f"fleet_test: {tool} not found (Debian packages orthanc, victoria-metrics, "
                  "prometheus-alertmanager, dcmtk)", file=sys.stderr)
            return 2
    agent_bin = os.path.abspath(a.agent)
    t_begin = time.time()
    hook = Webhook()
    tmp = tempfile.mkdtemp(prefix="pacs-fleet-")
    stack = Stack(tmp)

    interrupt_on_signals()

    ok = False
    try:
        p = {k: free_port() for k in ("vm", "vmalert", "am")}
        vm, vmalert, am = (f"http://127.0.0.1:{p[k]}" for k in ("vm", "vmalert", "am"))
        sites = {}
        orthanc_bin = shutil.which("Orthanc") or "/usr/sbin/Orthanc"

        # --- the sites: Orthanc, agent ----------------------------------------------
        for site in ("A", "B"):
            s = {k: free_port() for k in ("dicom", "http", "agent", "vmagent")}
            s["orthanc"] = f"http://127.0.0.1:{s['http']}"
            s["agent_addr"] = f"127.0.0.1:{s['agent']}"
            s["vmagent_url"] = f"http://127.0.0.1:{s['vmagent']}"
            db = os.path.join(tmp, f"orthanc{site}-db")
            os.makedirs(db)
            write_orthanc_config(os.path.join(tmp, f"orthanc{site}.json"), f"pacs-fleet-{site}", ORTHANC_AET,
                                 s["dicom"], s["http"], db)
            sites[site] = s

        def start_orthanc(site):
            s = sites[site]
            stack.start(f"orthanc{site}", [orthanc_bin, os.path.join(tmp, f"orthanc{site}.json")])
            wait_for(f"Orthanc {site} REST", lambda: http_req("GET", f"{s['orthanc']}/system")[0] == 200, 60, stack)

        for site, s in sites.items():
            start_orthanc(site)
            make_studies(os.path.join(tmp), s["orthanc"], n=3 if site == "A" else 1)
            cfg = os.path.join(tmp, f"agent{site}.toml")
            with open(cfg, "w") as f:
                f.write(agent_config(site, s["agent"], s["dicom"], s["orthanc"], tmp))
            s["dicom_names"] = re.findall(r'^\[\[dicom\]\]\nname = "([^"]+)"', open(cfg).read(), re.M)
            stack.start(f"agent{site}", [agent_bin, f"--config.file={cfg}",
                                         f"--web.listen-address={s['agent_addr']}", "--log.level=info"])
        for site, s in sites.items():
            wait_for(f"agent {site} /-/ready",
                     lambda s=s: http_req("GET", f"http://{s['agent_addr']}/-/ready")[0] == 200, 30, stack)

        # A failed Orthanc job at site A: C-STORE to the modality "agent" at port 1.
        studies = json.loads(http_req("GET", f"{sites['A']['orthanc']}/studies")[1])
        http_req("POST", f"{sites['A']['orthanc']}/modalities/agent/store",
                 json.dumps({"Resources": studies[:1], "Synchronous": False}).encode(),
                 headers={"Content-Type": "application/json"})

        # --- central: VictoriaMetrics, Alertmanager, vmalert ------------------------
        vm_args = set_flags(default_args(os.path.join(FLEET, "victoria-metrics.default")),
                            storageDataPath=os.path.join(tmp, "vm-data"), httpListenAddr=f"127.0.0.1:{p['vm']}")
        vm_args.append("-loggerLevel=WARN")

        def start_vm():
            stack.start("victoria-metrics", ["victoria-metrics", *vm_args])
            wait_for("VictoriaMetrics /health", lambda: http_req("GET", f"{vm}/health")[0] == 200, 60, stack)
        start_vm()

        with open(os.path.join(tmp, "alertmanager.yml"), "w") as f:
            f.write(render_alertmanager(hook.port, fast=True))
        stack.start("alertmanager", ["prometheus-alertmanager", f"--config.file={tmp}/alertmanager.yml",
                                     f"--storage.path={tmp}/am-data", f"--web.listen-address=127.0.0.1:{p['am']}",
                                     "--cluster.listen-address="])
        wait_for("Alertmanager ready", lambda: http_req("GET", f"{am}/-/ready")[0] == 200, 30, stack)

        shipped = default_args(os.path.join(FLEET, "vmalert.default"))
        ds = next(x.split("=", 1)[1] for x in shipped if x.startswith("-datasource.url="))
        vmalert_args = set_flags(
            shipped, rule=os.path.join(REPO, "alerts", "*.rules.yml"),
            datasource__url=ds.replace("http://127.0.0.1:8428", vm), remoteWrite__url=vm, remoteRead__url=vm,
            notifier__url=am, evaluationInterval=f"{SCRAPE_S}s", httpListenAddr=f"127.0.0.1:{p['vmalert']}")
        stack.start("vmalert", ["vmalert", *vmalert_args, "-loggerLevel=WARN"])
        wait_for("vmalert /health", lambda: http_req("GET", f"{vmalert}/health")[0] == 200, 30, stack)

        # --- the sites' vmagents: shipped config and flags --------------------------
        shipped = default_args(os.path.join(FLEET, "vmagent.default"))
        max_disk = parse_size(next(x.split("=", 1)[1] for x in shipped if x.startswith("-remoteWrite.maxDiskUsagePerURL=")))
        for site, s in sites.items():
            cfg = os.path.join(tmp, f"vmagent{site}.yml")
            with open(cfg, "w") as f:
                f.write(vmagent_config(site, s["agent_addr"], s["dicom_names"]))
            s["buffer"] = os.path.join(tmp, f"vmagent{site}-buffer")
            args = set_flags(shipped, promscrape__config=cfg, remoteWrite__url=f"{vm}/api/v1/write",
                             remoteWrite__tmpDataPath=s["buffer"], httpListenAddr=f"127.0.0.1:{s['vmagent']}")
            stack.start(f"vmagent{site}", ["vmagent", *args, "-loggerLevel=WARN"])
        for site, s in sites.items():
            wait_for(f"vmagent {site} /health", lambda s=s: http_req("GET", f"{s['vmagent_url']}/health")[0] == 200,
                     30, stack)

        # --- healthy baseline -------------------------------------------------------
        for site in sites:
            wait_for(f"site {site}: echo OK and zero consecutive failures in VictoriaMetrics", lambda site=site: vm_query(
                vm, f'pacs:probe_consecutive_failures{{site="{site}", probe="dicom_echo", target="archive"}} == 0'
                    f' and on(site, job, instance, probe, target) pacs_probe_success{{site="{site}"}} == 1'), 120, stack)
        log("both sites healthy in VictoriaMetrics; 5 s of successful history")
        time.sleep(5)
        firing = json.loads(http_req("GET", f"{vmalert}/api/v1/alerts")[1])["data"]["alerts"] or []
        assert not [x for x in firing if x["name"] == "PacsDicomEchoFailing"], f"echo alert before the outage: {firing}"

        # --- 1. site B's PACS goes down ---------------------------------------------
        stack.stop("orthancB")
        t0 = time.time()
        log("Orthanc B stopped: outage at site B begins")
        t_page, alert, body = wait_for("PacsDicomEchoFailing site=B at the pager webhook", lambda: next(
            (hit for hit in [hook.find("/pager", "PacsDicomEchoFailing", "firing", t0)]
             if hit and hit[1]["labels"].get("site") == "B"), None), 120, stack)
        page_s = t_page - t0
        got = alert["labels"]
        want = {"alertname": "PacsDicomEchoFailing", "severity": "critical", "site": "B", "probe": "dicom_echo",
                "target": "archive", "job": "pacs-agent", "instance": sites["B"]["agent_addr"]}
        assert all(got.get(k) == v for k, v in want.items()), f"labels {got} != expected {want}"
        assert body.get("receiver") == "pager", f"receiver {body.get('receiver')!r}, expected pager"
        assert body.get("groupLabels", {}).get("site") == "B", f"not grouped by site: {body.get('groupLabels')}"
        log(f"PAGE after {page_s:.1f}s: {got}")

        # --- 2. dashboards on VictoriaMetrics, while B's page is firing --------------
        require = [k for k in REQUIRE_DATA + EXTRA_REQUIRED if k not in EXEMPT]
        cmd = [sys.executable, os.path.join(REPO, "scripts", "check-dashboards"), "--prometheus", vm,
               "--rate-interval", "30s", "--var", "job=pacs-agent"]
        for pat in require:
            cmd += ["--require-data", pat]
        every = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "check-dashboards"), "--prometheus", vm,
                                "--require-data", "*"], capture_output=True, text=True)
        panels = {m.group(1) for m in re.finditer(r"series  (\S.*)$", every.stdout, re.M)}
        unlisted = sorted(panels - set(require) - EXEMPT)
        assert not unlisted, f"panels neither required nor exempt (add them to REQUIRE_DATA or EXEMPT): {unlisted}"
        log(f"check-dashboards on VictoriaMetrics: {len(require)} panels must have data, exempt: {sorted(EXEMPT)}")
        last = {}

        def dashboards_ok():
            r = subprocess.run(cmd, capture_output=True, text=True)
            last["out"] = r.stdout + r.stderr
            return r.returncode == 0
        # Grafana's queries carry no nocache=1, so VictoriaMetrics answers them as of 30 s ago
        # (-search.latencyOffset): wait until that view holds the firing alert too.
        try:
            wait_for("every dashboard query to return data from VictoriaMetrics", dashboards_ok, 150, stack, interval=5)
        finally:
            print(last.get("out", ""), end="", flush=True)

        for e in hook.events:
            for x in e[2].get("alerts", []):
                assert not (x["labels"].get("alertname") == "PacsDicomEchoFailing" and x["labels"].get("site") != "B"), \
                    f"PacsDicomEchoFailing for another site: {x['labels']}"

        start_orthanc("B")
        t1 = time.time()
        t_res, _, _ = wait_for("PacsDicomEchoFailing site=B resolved", lambda: hook.find(
            "/pager", "PacsDicomEchoFailing", "resolved", t1), 180, stack)
        log(f"RESOLVED {t_res - t1:.1f}s after Orthanc B came back")

        # --- 3. the centre goes away for OUTAGE_S seconds -----------------------------
        def pending(s):
            return metric_sum(metrics(s["vmagent_url"]), "vmagent_remotewrite_pending_data_bytes")
        wait_for("vmagent buffers empty before the outage", lambda: all(pending(s) == 0 for s in sites.values()),
                 120, stack)
        stack.stop("victoria-metrics", timeout=60)
        t_stop = time.time()
        log(f"VictoriaMetrics stopped: central outage of {a.outage}s begins")
        time.sleep(5)
        m0 = {site: metrics(s["vmagent_url"]) for site, s in sites.items()}
        t_m0 = time.time()
        while time.time() < t_stop + a.outage - 5:
            stack.check_alive()
            time.sleep(1)
        m1 = {site: metrics(s["vmagent_url"]) for site, s in sites.items()}
        t_m1 = time.time()
        budget = {}
        for site, s in sites.items():
            d_rows = (metric_sum(m1[site], "vmagent_remotewrite_rows_pushed_after_relabel_total")
                      - metric_sum(m0[site], "vmagent_remotewrite_rows_pushed_after_relabel_total"))
            d_bytes = (metric_sum(m1[site], "vmagent_remotewrite_pending_data_bytes")
                       - metric_sum(m0[site], "vmagent_remotewrite_pending_data_bytes"))
            d_scrapes = (metric_sum(m1[site], "vm_promscrape_scraped_samples_count")
                         - metric_sum(m0[site], "vm_promscrape_scraped_samples_count"))
            disk = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(s["buffer"]) for fn in fns)
            assert d_rows > 0 and d_bytes > 0, f"site {site}: nothing buffered during the outage ({d_rows} rows, {d_bytes} B)"
            budget[site] = (d_bytes / d_rows, d_rows / max(d_scrapes, 1))
            log(f"site {site}: buffered {d_rows:.0f} samples in {d_bytes:.0f} B over {t_m1 - t_m0:.0f}s "
                f"= {d_bytes / d_rows:.1f} B/sample, {d_rows / max(d_scrapes, 1):.0f} samples per scrape; "
                f"buffer on disk {disk} B")
        while time.time() < t_stop + a.outage:
            time.sleep(0.5)
        start_vm()
        t_start = time.time()
        log(f"VictoriaMetrics back after {t_start - t_stop:.0f}s; waiting for the buffers to drain")
        # The disk queues empty first; blocks that were in flight when the centre went away
        # are re-sent by their own worker after its back-off (up to 1 min in vmagent), so
        # wait until the window is complete, then judge it sample by sample.
        wait_for("vmagent disk buffers empty", lambda: all(pending(s) == 0 for s in sites.values()), 240, stack,
                 interval=2)
        result = {}

        def complete():
            for site in sites:
                result[site] = sample_gaps(vm, site, t_stop - 20, t_start + 2)
            return not any(r[0] for r in result.values())
        try:
            wait_for("every sample of the outage window in VictoriaMetrics", complete, 180, stack, interval=5)
        except AssertionError:
            pass
        for site, (problems, n, summary) in result.items():
            log(f"site {site}: {summary}")
            assert not problems, f"site {site}: samples lost in VictoriaMetrics: " + "; ".join(problems[:10])
            # Not a timing assertion: vmagent kept scraping and buffering while the centre was
            # away, so the exact check above covered the outage and was not vacuous.
            assert n >= 0.6 * (t_start + 22 - t_stop) / SCRAPE_S, f"site {site}: only {n} samples in the window"
        counts = {site: r[1] for site, r in result.items()}
        log(f"complete {time.time() - t_start:.0f}s after VictoriaMetrics came back")

        bps, series = budget["A"]
        per_node = bps * series / TYPICAL_SCRAPE_S       # bytes per second per typical node
        print(f"fleet_test: outage of {t_start - t_stop:.0f}s, no sample lost ({counts['A']} + {counts['B']} "
              f"samples of the scrape counter checked one by one)", flush=True)
        print(f"fleet_test: buffer {bps:.1f} B/sample; typical node (site A) {series:.0f} series "
              f"-> {per_node:.0f} B/s at {TYPICAL_SCRAPE_S}s scrapes; shipped maxDiskUsagePerURL "
              f"{max_disk / (1 << 30):.2f} GiB lasts " + ", ".join(
                  f"{n} node(s): {max_disk / (per_node * n) / 3600:.1f} h" for n in (1, 10, 50, 200)), flush=True)
        ok = True
        print(f"fleet_test: OK (page {page_s:.1f} s, resolve {t_res - t1:.1f} s, wall {time.time() - t_begin:.0f} s)")
        return 0
    except AssertionError as e:
        print(f"fleet_test: FAILED: {e}", file=sys.stderr)
        for name in ("victoria-metrics", "vmalert", "vmagentA", "vmagentB", "agentA", "agentB", "alertmanager"):
            stack.tail(name, 15)
        print(f"webhook events: {json.dumps([(round(t, 1), p, [x['labels'].get('alertname') + ':' + x['labels'].get('site', '-') + ':' + x['status'] for x in b.get('alerts', [])]) for t, p, b in hook.events])}")
        return 1
    except Exception as e:  # noqa: BLE001 — report, then clean up like any failure
        import traceback
        traceback.print_exc()
        print(f"fleet_test: FAILED: {e!r}", file=sys.stderr)
        for name in ("victoria-metrics", "vmalert", "vmagentA", "vmagentB", "agentA", "agentB"):
            stack.tail(name, 15)
        return 1
    except KeyboardInterrupt as e:
        print(f"fleet_test: interrupted ({e}); cleaning up", file=sys.stderr)
        return 130
    finally:
        tear_down(stack, hook, tmp, keep=a.keep or not ok)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
