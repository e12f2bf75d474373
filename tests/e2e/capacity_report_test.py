#!/usr/bin/python3
"""End to end: 90 days of history in a real Prometheus -> pacs-capacity-report -> HTML -> Chromium.

Writes 90 days of synthetic pacs-agent history (and the ALERTS series Prometheus keeps) as
OpenMetrics, backfills it with `promtool tsdb create-blocks-from openmetrics
--max-block-duration=720h`, starts Debian's prometheus on a free 127.0.0.1 port in a temp dir
with TLS and basic auth, runs report/pacs-capacity-report against it and checks the HTML:

  * a volume growing 10 GB/day on average (weekday/weekend pattern, noise) is forecast to be
    full within +-10 % of the true number of days (computed here by continuing the pattern);
  * a modality whose volume doubled shows about +100 % in its table, and the data behind the
    chart equals the generated daily counts on every day with data, across the local
    midnight (TZ=Europe/Berlin) restart of the "today" count;
  * the three days the agent was down are reported in words ("no data from ... to ..."),
    shown as "no data" in the chart data (never 0), and not reported for the other node;
  * the 30-day-old and 5-day-old C-ECHO outages give the availability computed here;
  * the alerts that fired are counted (pending, non-PACS and older alerts are not);
  * TLS without the CA, a wrong password and a password on the command line are refused
    with a clear message.

Then Chromium (headless) renders the file offline to a PNG, which must show the page with
its charts (non-blank, chart colours present, nothing cut off).

Usage: capacity_report_test.py [--keep]   (python3 with matplotlib: Debian's /usr/bin/python3)
Needs: prometheus, promtool, chromium, openssl, python3-matplotlib (scripts/lib.sh).
"""
import argparse
import base64
import bisect
import crypt  # noqa: deprecated in 3.11, present until 3.13; bcrypt for Prometheus' web config
import datetime as dt
import html.parser
import os
import random
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPORT = os.path.join(REPO, "report", "pacs-capacity-report")
TZ = "Europe/Berlin"
DAY, HOUR, STEP = 86400, 3600, 300
JITTER = 17                    # samples are not aligned to the hour, like real scrapes
DAYS = 90
GB = 1e9
NODE1 = {"job": "pacs-agent", "instance": "pacs1:9727"}
NODE2 = {"job": "pacs-agent", "instance": "pacs2:9727"}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../..", "tests", "support"))
from ports import free_port  # noqa: E402  (a port no outgoing connection can take meanwhile)


def local_midnight(d):
    return int(time.mktime(dt.datetime(d.year, d.month, d.day).timetuple()))


def lbl(**kw):
    return "{" + ",".join(f'{k}="{v}"' for k, v in kw.items()) + "}"


class History:
    """The synthetic truth: every series, plus what the test expects the report to find."""

    def __init__(self, end):
        rnd = random.Random(20240611)
        self.end = end                                   # report end (a full hour)
        self.t0 = end - (DAYS + 2) * DAY                 # history starts 2 days before the period
        self.times = list(range(self.t0 + JITTER, end + 1, STEP))
        # Agent on pacs1 down for three days: last sample 09:55, back at 16:00 (local).
        gday = (dt.datetime.fromtimestamp(end) - dt.timedelta(days=50)).date()
        self.gap = (local_midnight(gday) + 10 * HOUR, local_midnight(gday + dt.timedelta(days=3)) + 16 * HOUR)
        up1 = lambda t: not (self.gap[0] <= t < self.gap[1])
        self.series = {}                                 # metric -> [(labels, [(t, v)])]

        # --- volumes ---------------------------------------------------------------------
        # store: 12.8 GB/day Mon-Fri and 3 GB/day Sat-Sun (10 GB/day on average), written
        # 07:00-19:00, plus noise. The truth is this pattern continued until avail = 0.
        self.store_size, self.store_reserved = 4e12, 2e11
        def store_rate(t):                               # bytes per second at time t
            lt = dt.datetime.fromtimestamp(t)
            if not 7 <= lt.hour < 19:
                return 0.0
            return (12.8 if lt.weekday() < 5 else 3.0) * GB / (12 * HOUR)
        used, trend, t_prev = 2.5e12 - DAYS * 10 * GB - 20 * GB, {}, self.t0
        acc = used
        for t in self.times:
            acc += store_rate(t) * (t - t_prev)
            t_prev = t
            trend[t] = acc
        s_size, s_free, s_avail = [], [], []
        for t in self.times:
            if not up1(t):
                continue
            u = trend[t] + rnd.gauss(0, 0.3 * GB)
            s_size.append((t, self.store_size))
            s_free.append((t, self.store_size - u))
            s_avail.append((t, self.store_size - u - self.store_reserved))
        avail_end = self.store_size - self.store_reserved - trend[self.times[-1]]
        t, left = self.times[-1], avail_end
        while left > 0:
            t += STEP
            left -= store_rate(t) * STEP
        self.store_full = t
        self.store_avail_end = avail_end
        # cache: filled during the day, emptied at night, no trend.
        c_size, c_free, c_avail = [], [], []
        for t in self.times:
            if not up1(t):
                continue
            lt = dt.datetime.fromtimestamp(t)
            u = 6e11 + (20 * GB * min(max(lt.hour - 7, 0), 12) / 12) + rnd.gauss(0, 0.2 * GB)
            c_size.append((t, 1e12))
            c_free.append((t, 1e12 - u))
            c_avail.append((t, 1e12 - u - 5e10))
        # images on the other node: 2 GB/day, never down.
        i_size, i_free, i_avail = [], [], []
        for t in self.times:
            u = 1e12 + 2 * GB * (t - self.t0) / DAY
            i_size.append((t, 2e12))
            i_free.append((t, 2e12 - u))
            i_avail.append((t, 2e12 - u - 1e11))
        self.images_avail_end = i_avail[-1][1]
        fs = lambda node, target, path: lbl(**node, probe="filesystem", target=target, path=path)
        for metric, store, cache, images in (("pacs_filesystem_size_bytes", s_size, c_size, i_size),
                                             ("pacs_filesystem_free_bytes", s_free, c_free, i_free),
                                             ("pacs_filesystem_avail_bytes", s_avail, c_avail, i_avail)):
            self.series[metric] = [(fs(NODE1, "store", "/srv/store"), store),
                                   (fs(NODE1, "cache", "/srv/cache"), cache),
                                   (fs(NODE2, "images", "/srv/images"), images)]

        # --- studies per modality ------------------------------------------------------------
        # "StudyDate = today" counts that restart at local midnight; the agent still exports
        # yesterday's total for the first 5 minutes after midnight (its next C-FIND run).
        double_at = local_midnight((dt.datetime.fromtimestamp(end) - dt.timedelta(days=45)).date())
        def per_day(group, d):
            weekday = d.weekday() < 5
            if group == "CT":
                n = 40 if weekday else 10
                return n * 2 if local_midnight(d) >= double_at else n
            return {"MR": 20 if weekday else 4, "CR": 60, "US": 15 if weekday else 0}[group]
        hours = {"CT": (7, 19), "MR": (7, 19), "CR": (0, 24), "US": (8, 16)}
        self.daily = {}                                  # (group, date) -> studies
        first_day = dt.datetime.fromtimestamp(self.t0).date()
        last_day = dt.datetime.fromtimestamp(end).date()
        study_times = {g: [] for g in hours}
        d = first_day
        while d <= last_day:
            for g, (h0, h1) in hours.items():
                n = per_day(g, d)
                self.daily[(g, d)] = n
                m = local_midnight(d)
                span = (local_midnight(d + dt.timedelta(days=1)) - m) if h1 == 24 else (h1 - h0) * HOUR
                study_times[g] += sorted(m + h0 * HOUR + rnd.uniform(0, span - 1) for _ in range(n))
            d += dt.timedelta(days=1)
        self.series["pacs_dicom_find_matches"] = []
        self.seen = {}                                   # (group, date) -> studies the agent saw
        for g, sts in study_times.items():
            sts.sort()
            pts = []
            for t in self.times:
                if not up1(t):
                    continue
                m = local_midnight(dt.datetime.fromtimestamp(t).date())
                if t - m < STEP:      # first sample after midnight: still the last count of yesterday
                    prev = local_midnight(dt.datetime.fromtimestamp(m - HOUR).date())
                    n = bisect.bisect_right(sts, t - STEP) - bisect.bisect_left(sts, prev)
                else:
                    n = bisect.bisect_right(sts, t) - bisect.bisect_left(sts, m)
                pts.append((t, n))
            # What the agent can see of a day: its studies up to its last C-FIND before
            # midnight (after midnight the query asks for the new date).
            for (gg, d), _ in list(self.daily.items()):
                if gg == g:
                    nxt = local_midnight(d + dt.timedelta(days=1))
                    last = nxt - ((nxt - self.t0 - JITTER) % STEP or STEP)
                    self.seen[(g, d)] = bisect.bisect_right(sts, last) - bisect.bisect_left(sts, local_midnight(d))
            self.series["pacs_dicom_find_matches"].append(
                (lbl(**NODE1, probe="dicom_find", target="archive", group=g), pts))

        # --- C-ECHO availability ---------------------------------------------------------
        o1d = (dt.datetime.fromtimestamp(end) - dt.timedelta(days=20)).date()
        o2d = (dt.datetime.fromtimestamp(end) - dt.timedelta(days=5)).date()
        self.outages = [(local_midnight(o1d) + 2 * HOUR, local_midnight(o1d) + 8 * HOUR),
                        (local_midnight(o2d) + 14 * HOUR, local_midnight(o2d) + 14 * HOUR + 1800)]
        down = lambda t: any(a <= t < b for a, b in self.outages)
        archive = [(t, 0 if down(t) else 1) for t in self.times if up1(t)]
        router = [(t, 1) for t in self.times if up1(t)]
        self.series["pacs_probe_success"] = [
            (lbl(**NODE1, probe="dicom_echo", target="archive"), archive),
            (lbl(**NODE1, probe="dicom_echo", target="router"), router)]
        start = end - DAYS * DAY
        inside = [v for t, v in archive if start < t <= end]
        self.availability = sum(inside) / len(inside)
        inside30 = [v for t, v in archive if end - 30 * DAY < t <= end]
        self.availability30 = sum(inside30) / len(inside30)

        # --- ALERTS (what Prometheus writes for its rules; 1-minute resolution) ------------
        alerts = []
        def episode(labels, a, b):
            alerts.append((labels, [(t, 1) for t in range(a + 7, b, 60)]))
        echo = dict(NODE1, probe="dicom_echo", target="archive")
        for a, b in self.outages:
            episode(lbl(alertname="PacsDicomEchoFailing", alertstate="firing", severity="critical", **echo),
                    a + 120, b + 60)
        vol = dict(NODE1, probe="filesystem", target="store", path="/srv/store")
        fill_alerts = [end - 60 * DAY, end - 30 * DAY, end - 10 * DAY]
        pts = []
        for a in fill_alerts:
            pts += [(t, 1) for t in range(a + 7, a + 2 * HOUR, 60)]
        alerts.append((lbl(alertname="PacsFilesystemSpaceFillingUp", alertstate="firing", severity="warning", **vol), pts))
        us = dict(NODE1, probe="dicom_find", target="archive", group="US")
        s0 = end - 12 * DAY
        episode(lbl(alertname="PacsDicomStudiesStopped", alertstate="pending", severity="warning", **us), s0 - 1800, s0)
        episode(lbl(alertname="PacsDicomStudiesStopped", alertstate="firing", severity="warning", **us), s0, s0 + 3 * HOUR)
        episode(lbl(alertname="NodeDown", alertstate="firing", severity="critical", job="node", instance="pacs1:9100"),
                end - 3 * DAY, end - 3 * DAY + HOUR)
        episode(lbl(alertname="PacsAgentDown", alertstate="firing", severity="critical", **NODE1),
                end - (DAYS + 1) * DAY, end - (DAYS + 1) * DAY + HOUR)   # before the period
        self.series["ALERTS"] = alerts
        self.expected_alerts = {("PacsDicomEchoFailing", "critical"): 2,
                                ("PacsFilesystemSpaceFillingUp", "warning"): 3,
                                ("PacsDicomStudiesStopped", "warning"): 1}

    def write_openmetrics(self, path):
        n = 0
        with open(path, "w", encoding="utf-8") as f:
            for metric, series in self.series.items():
                f.write(f"# TYPE {metric} gauge\n")
                for labels, pts in series:
                    f.write("".join(f"{metric}{labels} {v!r} {t}\n" for t, v in pts))
                    n += len(pts)
            f.write("# EOF\n")
        return n


class TableParser(html.parser.HTMLParser):
    """Collects every <table id=...> as a list of rows of cell texts, and all text."""

    def __init__(self):
        super().__init__()
        self.tables, self.text, self.images = {}, [], []
        self._table, self._row, self._cell = None, None, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id", f"anon{len(self.tables)}")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(a.get("src", ""))
        elif tag in ("script", "link", "iframe", "object", "embed"):
            raise AssertionError(f"report contains <{tag}>: it must be self-contained without scripts")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
    log(f"ok   {msg}")


def run_report(args, env_extra=None):
    env = dict(os.environ, TZ=TZ)
    env.pop("PACS_PROMETHEUS_PASSWORD", None)
    env.update(env_extra or {})
    p = subprocess.run([REPORT] + args, capture_output=True, text=True, env=env, timeout=600)
    return p.returncode, p.stdout, p.stderr


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (report.html, screenshot.png)")
    a = ap.parse_args(argv)
    for tool in ("prometheus", "promtool", "chromium", "openssl"):
        if not shutil.which(tool):
            raise SystemExit(f"capacity_report_test: {tool} not found (install it: scripts/lib.sh PACS_PACKAGES)")
    os.environ["TZ"] = TZ
    time.tzset()
    tmp = tempfile.mkdtemp(prefix="pacs-capacity-report-test.")
    prom = None
    try:
        end = int(time.time()) // HOUR * HOUR
        t = time.time()
        hist = History(end)
        om = os.path.join(tmp, "history.om")
        n = hist.write_openmetrics(om)
        log(f"generated {n} samples of {DAYS + 2} days in {time.time() - t:.1f} s ({os.path.getsize(om) >> 20} MiB)")
        t = time.time()
        tsdb = os.path.join(tmp, "tsdb")
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=720h",
                        "--quiet", om, tsdb], check=True, timeout=600)
        blocks = [d for d in os.listdir(tsdb) if not d.startswith(".") and not d.startswith("wal")]
        log(f"backfilled {len(blocks)} blocks in {time.time() - t:.1f} s")
        os.unlink(om)

        # --- Prometheus with TLS and basic auth -------------------------------------------
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        password = "capacity-s3cret"
        with open(os.path.join(tmp, "web.yml"), "w") as f:
            f.write(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
                    f"basic_auth_users:\n  reporter: '{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))}'\n")
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1m\n  evaluation_interval: 1m\n")
        with open(os.path.join(tmp, "password"), "w") as f:
            f.write(password + "\n")
        with open(os.path.join(tmp, "wrong-password"), "w") as f:
            f.write("not-it\n")
        port = free_port()
        url = f"https://127.0.0.1:{port}"
        with open(os.path.join(tmp, "prometheus.log"), "wb") as plog:
            prom = subprocess.Popen(["prometheus", f"--config.file={tmp}/prometheus.yml", f"--web.config.file={tmp}/web.yml",
                                     f"--storage.tsdb.path={tsdb}", "--storage.tsdb.retention.time=3650d",
                                     f"--web.listen-address=127.0.0.1:{port}"],
                                    stdout=plog, stderr=subprocess.STDOUT, start_new_session=True)
        ctx = ssl.create_default_context(cafile=cert)
        auth = "Basic " + base64.b64encode(f"reporter:{password}".encode()).decode()
        deadline, last = time.time() + 120, None
        while True:
            if prom.poll() is not None:
                raise AssertionError(f"prometheus exited with {prom.returncode}; see {tmp}/prometheus.log")
            try:
                req = urllib.request.Request(f"{url}/-/ready", headers={"Authorization": auth})
                with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
                    if r.status == 200:
                        break
            except OSError as e:
                last = e
            if time.time() > deadline:
                raise AssertionError(f"prometheus not ready after 120 s: {last}")
            time.sleep(0.5)
        log(f"prometheus ready on {url} (TLS, basic auth)")

        # --- refusals -----------------------------------------------------------------------
        out = os.path.join(tmp, "report.html")
        base = [f"--prometheus.url={url}", f"--output={out}", "--prometheus.username=reporter"]
        rc, _, err = run_report(base + [f"--prometheus.password-file={tmp}/password"])
        check(rc == 1 and "not trusted" in err and "--prometheus.ca-file" in err,
              f"TLS without the CA is refused and names --prometheus.ca-file ({err.strip()})")
        rc, _, err = run_report(base + [f"--prometheus.ca-file={cert}", f"--prometheus.password-file={tmp}/wrong-password"])
        check(rc == 1 and "401" in err, f"a wrong password is refused ({err.strip()})")
        rc, _, err = run_report(base + [f"--prometheus.ca-file={cert}", f"--prometheus.password={password}"])
        check(rc == 2 and "password-file" in err and not os.path.exists(out),
              "a password on the command line is refused (usage error)")
        rc, so, err = run_report(base + ["--prometheus.insecure-skip-verify", "--days=7", f"--end={end}"],
                                 {"PACS_PROMETHEUS_PASSWORD": password})
        check(rc == 0 and os.path.exists(out), f"password from the environment with --prometheus.insecure-skip-verify ({so.strip() or err.strip()})")

        # --- the report ---------------------------------------------------------------------
        t = time.time()
        rc, so, err = run_report(base + [f"--prometheus.ca-file={cert}", f"--prometheus.password-file={tmp}/password",
                                         f"--days={DAYS}", f"--end={end}"])
        check(rc == 0, f"report written in {time.time() - t:.1f} s: {so.strip()} {err.strip()}")
        with open(out, encoding="utf-8") as f:
            doc = f.read()
        p = TableParser()
        p.feed(doc)
        text = " ".join(" ".join(p.text).split())
        check(not re.search(r'(src|href)="(https?:)?//', doc), "no external asset (src/href to a URL)")
        check(len(p.images) >= 6 and all(s.startswith("data:image/png;base64,") for s in p.images),
              f"{len(p.images)} charts embedded as base64 PNG")
        first_h2 = re.search(r"<h2[^>]*>([^<]*)</h2>", doc).group(1)
        check(first_h2 == "Summary" and "summary-table" in p.tables, "the summary table comes first")

        # Fill date of the 10 GB/day volume within +-10 % of the truth.
        vt = {r[0]: r for r in p.tables["volumes-table"][1:]}
        store = vt["store (/srv/store) on pacs1:9727"]
        fill = dt.date.fromisoformat(store[-1])
        true_days = (hist.store_full - end) / DAY
        got_days = (local_midnight(fill) + DAY / 2 - end) / DAY
        err_pct = 100 * (got_days - true_days) / true_days
        check(abs(err_pct) <= 10, f"store full on {fill} = {got_days:.1f} days, truth "
              f"{dt.date.fromtimestamp(hist.store_full)} = {true_days:.1f} days: {err_pct:+.1f}% (within 10%)")
        growth30 = float(store[5].split()[0])
        check(9.0 <= growth30 <= 11.0 and store[5].endswith("GB/day"), f"store growth (30 d) {store[5]} ~ 10 GB/day")
        check(vt["cache (/srv/cache) on pacs1:9727"][-1].startswith("not within 5 years"),
              f"flat volume: {vt['cache (/srv/cache) on pacs1:9727'][-1]}")
        images = vt["images (/srv/images) on pacs2:9727"]
        images_days = (local_midnight(dt.date.fromisoformat(images[-1])) - end) / DAY
        images_true = hist.images_avail_end / (2 * GB)
        check(abs(images_days - images_true) <= 0.1 * images_true,
              f"images (2 GB/day) full in {images_days:.0f} days (truth {images_true:.0f})")
        check(re.search(r"full on \d{4}-\d{2}-\d{2} \(in \d+ days\)", text) is not None, "summary gives the fill date")

        # Studies: the doubled modality, exact daily counts, gaps as "no data".
        stable = [k for k in p.tables if k.startswith("studies-table-")]
        check(len(stable) == 1, f"one studies table per C-FIND target ({stable})")
        st = {r[0]: r for r in p.tables[stable[0]][1:]}
        pct = lambda cell: int(cell.rstrip("%").replace("±", "").replace("+", "").replace("−", "-"))
        ct_change = pct(st["CT"][4])
        check(80 <= ct_change <= 120, f"CT doubled: change {st['CT'][4]} (per day {st['CT'][2]} -> {st['CT'][3]})")
        for g in ("MR", "CR"):
            c = pct(st[g][4])
            check(abs(c) <= 10, f"{g} stable: change {st[g][4]}")
        summary_ct = [r for r in p.tables["summary-table"] if r and r[0] == "CT on archive"]
        check(summary_ct and summary_ct[0][2].startswith("+1") and "%" in summary_ct[0][2],
              f"summary shows CT's change: {summary_ct}")
        data = p.tables["studies-data-" + stable[0][len("studies-table-"):]]
        header, rows = data[0], data[1:]
        gap_days = set()
        d = dt.date.fromtimestamp(hist.gap[0])
        while local_midnight(d) < hist.gap[1]:
            if not (local_midnight(d + dt.timedelta(days=1)) - HOUR >= hist.gap[1]):
                gap_days.add(d)          # no data in the day's last hour
            d += dt.timedelta(days=1)
        exact, nodata_ok, lost = 0, 0, 0
        for r in rows:
            day = dt.date.fromisoformat(r[0])
            for g, cell in zip(header[1:], r[1:]):
                if day in gap_days:
                    check(cell == "no data", f"{day} {g}: agent down -> 'no data', not a number") if g == "CT" else None
                    nodata_ok += cell == "no data"
                else:
                    assert cell != "no data", f"{day} {g}: has data but shows 'no data'"
                    assert int(cell) == hist.seen[(g, day)], f"{day} {g}: report {cell}, the agent saw {hist.seen[(g, day)]}"
                    exact += 1
                    lost += hist.daily[(g, day)] - hist.seen[(g, day)]
        check(exact >= (DAYS - 5) * 4, f"chart data equals what the agent saw on all {exact} modality-days with data "
              f"({lost} studies arrived after the last C-FIND of their day)")
        check(nodata_ok == 4 * len(gap_days), f"the {len(gap_days)} days without data show 'no data' for all 4 modalities")
        ct_col = header.index("CT")
        firsts = [int(r[ct_col]) for r in rows[:28] if r[ct_col] != "no data"]
        lasts = [int(r[ct_col]) for r in rows[-28:] if r[ct_col] != "no data"]
        check(abs(sum(lasts) / len(lasts) / (sum(firsts) / len(firsts)) - 2) < 0.05,
              "chart data: CT's last 4 weeks average twice its first 4 weeks")

        # The gap in words, to the hour, where it happened and only there.
        gaps = re.findall(r"no data from (\d{4}-\d\d-\d\d \d\d:\d\d) to (\d{4}-\d\d-\d\d \d\d:\d\d)", text)
        parsed = [(time.mktime(time.strptime(x, "%Y-%m-%d %H:%M")), time.mktime(time.strptime(y, "%Y-%m-%d %H:%M")))
                  for x, y in gaps]
        near = [g for g in parsed if abs(g[0] - hist.gap[0]) <= HOUR and abs(g[1] - hist.gap[1]) <= HOUR]
        check(len(near) >= 3 and len(near) == len(parsed),
              f"the agent's 3-day outage is reported in words ({gaps[0][0]} to {gaps[0][1]}; truth "
              f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(hist.gap[0]))} to "
              f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(hist.gap[1]))}), {len(parsed)} times, nothing else")
        images_section = doc.split("<h3>images (/srv/images) on pacs2:9727</h3>", 1)[1].split("<h3>", 1)[0]
        check("No gap in the data." in images_section, "no gap reported for the node that was not down")

        # Availability.
        at = {r[0]: r for r in p.tables["availability-table"][1:]}
        got = float(at["archive on pacs1:9727"][1].rstrip("%")) / 100
        got30 = float(at["archive on pacs1:9727"][2].rstrip("%")) / 100
        check(abs(got - hist.availability) < 1e-4, f"archive availability {got:.5f} (truth {hist.availability:.5f})")
        check(abs(got30 - hist.availability30) < 1e-4, f"archive availability 30 d {got30:.5f} (truth {hist.availability30:.5f})")
        check(at["router on pacs1:9727"][1] == "100.000%", "router never failed: 100.000%")

        # Alerts.
        rows = {(r[0], r[1]): int(r[2]) for r in p.tables["alerts-table"][1:]}
        check(rows == hist.expected_alerts, f"alerts counted by name and severity: {rows}")
        check(re.search(r"6 times \(3 different alerts\)", text) is not None, "summary: 6 firings of 3 alerts")

        # --- Chromium -------------------------------------------------------------------------
        shot = os.path.join(tmp, "screenshot.png")
        profile = os.path.join(tmp, "chromium-profile")
        t = time.time()
        cp = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                             f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1200,9000",
                             "file://" + out], capture_output=True, text=True, timeout=300)
        check(cp.returncode == 0 and os.path.exists(shot), f"chromium rendered the page in {time.time() - t:.1f} s")
        import numpy as np             # python3-numpy and python3-pil come with python3-matplotlib
        from PIL import Image
        px = np.asarray(Image.open(shot).convert("RGB")).astype(np.int32)
        h, w, _ = px.shape
        ink = px.sum(axis=2) < 720
        nonwhite = ink.mean()
        q = px >> 4
        colours = len(np.unique((q[..., 0] << 8) | (q[..., 1] << 4) | q[..., 2]))
        bottom = int(np.nonzero(ink.any(axis=1))[0].max()) if ink.any() else 0
        def has(colour, tol=40, min_px=200):
            return int((np.abs(px - np.array(colour)).sum(axis=2) < tol).sum()) >= min_px
        check(nonwhite > 0.03 and colours > 100,
              f"screenshot {w}x{h} is not blank: {100 * nonwhite:.1f}% ink, {colours} colours")
        check(has((0x1f, 0x77, 0xb4)) and has((0xd6, 0x27, 0x28)) and has((0x2c, 0xa0, 0x2c)),
              "chart colours (blue used, red forecast, green available) are on screen")
        # Every chart is on screen: the page's images, one after the other, each with ink.
        rows_ink = ink.any(axis=1)
        blocks, run = 0, 0
        for r in rows_ink:
            run = run + 1 if r else 0
            blocks += run == 150            # an ink block at least 150 px tall: a chart
        check(blocks >= len(p.images), f"{blocks} chart-sized blocks on screen for {len(p.images)} charts")
        check(bottom < h - 100, f"the whole page fits the screenshot (content ends at {bottom} of {h} px)")
        if a.keep:
            log(f"kept {tmp}: report.html, screenshot.png")
        print("capacity_report_test: OK")
        return 0
    finally:
        if prom is not None:
            prom.terminate()
            try:
                prom.wait(30)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
