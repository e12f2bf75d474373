"""Outage-to-page timing of the shipped configuration (python3 + PyYAML).

Reads the settings that decide how long a dead DICOM AE takes to page someone:
  deploy/pacs-agent.toml            C-ECHO interval and timeout of every [[dicom]] target
  deploy/prometheus/prometheus.yml  scrape interval of the job that scrapes the agent
  alerts/pacs-agent.rules.yml       PacsDicomEchoFailing: failures in a row, for:, its group's interval
  deploy/alertmanager/alertmanager.yml  group_wait of the route critical alerts take
and, for the central chain (docs/scaling.md), deploy/fleet/vmagent.yml's scrape interval and
deploy/fleet/vmalert.default's evaluation interval instead of Prometheus'.

and adds up the worst case (every wait at its longest):

  N x probe interval      the outage starts just after a run began: the next run starts up
                          to one interval later, the N-th failure N-1 intervals after that
  + probe timeout         that run fails only at its deadline (a silent host)
  + scrape interval       the failure waits for the next scrape
  + evaluation interval   ... and for the next rule evaluation
  + for: (in evaluations) pending, then firing
  + group_wait            Alertmanager waits before the first notification of a group
  + (central chain) vmagent's remote-write flush to VictoriaMetrics
  + slack                 scrape/evaluation/notification processing

Used by scripts/check-page-budget (CI) and tests/e2e/stack_test.py (to run the stack with
the shipped timings and compare what it measures with this bound).
"""
import math
import os
import re
import sys
import tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import yaml_file  # noqa: E402  (PyYAML, Debian python3-yaml)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUDGET_S = 90          # never more than this from outage to page
SLACK_S = 2            # processing: scrape, evaluation, Prometheus -> Alertmanager -> receiver
VMAGENT_FLUSH_S = 1    # vmagent's -remoteWrite.flushInterval default
ALERT = "PacsDicomEchoFailing"
AGENT_JOB = "pacs-agent"


class BudgetError(Exception):
    pass


def load_yaml(path):
    return yaml_file.load(path) or {}


def duration_s(text, where):
    """Prometheus/agent duration ("10s", "1m30s", "500ms") in seconds."""
    m = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+)", str(text).strip())
    if not m:
        raise BudgetError(f"{where}: not a duration: {text!r}")
    total = 0.0
    for n, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text):
        total += float(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return total


def echo_targets(path):
    """[(name, interval_s, timeout_s)] of every [[dicom]] target that runs the echo check."""
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    agent = cfg.get("agent", {})
    out = []
    for i, t in enumerate(cfg.get("dicom", [])):
        if "echo" not in t.get("checks", ["echo"]):
            continue
        name = t.get("name", f"dicom[{i}]")
        iv = t.get("interval", agent.get("interval"))
        to = t.get("timeout", agent.get("timeout"))
        if iv is None or to is None:
            raise BudgetError(f"{path}: dicom target {name}: set interval and timeout (here or in [agent]) "
                              "so the page budget does not depend on built-in defaults")
        iv_s = duration_s(iv, f"{path}: {name}.interval")
        out.append((name, iv_s, min(duration_s(to, f"{path}: {name}.timeout"), iv_s)))
    if not out:
        raise BudgetError(f"{path}: no [[dicom]] target with the echo check")
    return out


def scrape_interval(path, job=AGENT_JOB):
    doc = load_yaml(path)
    glob = doc.get("global") or {}
    for sc in doc.get("scrape_configs") or []:
        if sc.get("job_name") == job:
            return duration_s(str(sc.get("scrape_interval", glob.get("scrape_interval", "1m"))),
                              f"{path}: job {job} scrape_interval")
    raise BudgetError(f"{path}: no scrape job named {job}")


def evaluation_interval(path):
    doc = load_yaml(path)
    return duration_s((doc.get("global") or {}).get("evaluation_interval", "1m"), f"{path}: evaluation_interval")


def echo_alert(path, default_eval_s):
    """(failures in a row, for: seconds, group evaluation interval) of PacsDicomEchoFailing."""
    doc = load_yaml(path)
    for g in doc.get("groups") or []:
        for r in g.get("rules") or []:
            if r.get("alert") != ALERT:
                continue
            # The failures-in-a-row count (the recording's expression, inlined for rulers that
            # read recordings back late), compared with ">= N".
            expr = r.get("expr", "")
            m = re.search(r"\)\s*>=\s*(\d+)\s*(?:unless|$)", expr) \
                if "pacs_probe_last_success_timestamp_seconds" in expr else None
            if not m:
                raise BudgetError(f"{path}: {ALERT}: expr is not '(<failures in a row>) >= N'; "
                                  "cannot bound its latency")
            eval_s = duration_s(g["interval"], f"{path}: group {g.get('name')} interval") \
                if "interval" in g else default_eval_s
            return int(m.group(1)), duration_s(r.get("for", "0s"), f"{path}: {ALERT} for"), eval_s
    raise BudgetError(f"{path}: no alert {ALERT}")


def critical_group_wait(path):
    doc = load_yaml(path)
    root = doc.get("route") or {}
    wait = root.get("group_wait", "30s")
    for r in root.get("routes") or []:
        if any(re.fullmatch(r'\s*severity\s*=~?\s*"?(critical|\.\*)"?\s*', m) for m in r.get("matchers") or []):
            return duration_s(r.get("group_wait", wait), f"{path}: critical route group_wait")
    return duration_s(wait, f"{path}: route group_wait")


def vmalert_evaluation_interval(path):
    with open(path, encoding="utf-8") as f:
        m = re.search(r"-evaluationInterval=(\S+?)[\s\"']", f.read())
    return duration_s(m.group(1), f"{path}: -evaluationInterval") if m else 60.0


def central(root=REPO):
    """The same timings for the central chain: site vmagent -> VictoriaMetrics -> vmalert."""
    fleet = os.path.join(root, "deploy", "fleet")
    t = shipped(root, eval_default=vmalert_evaluation_interval(os.path.join(fleet, "vmalert.default")))
    t["scrape_interval_s"] = scrape_interval(os.path.join(fleet, "vmagent.yml"))
    t["flush_s"] = VMAGENT_FLUSH_S
    return t


def shipped(root=REPO, eval_default=None):
    """Every timing that shapes outage -> page, from the shipped files under `root`."""
    prom = os.path.join(root, "deploy", "prometheus", "prometheus.yml")
    if eval_default is None:
        eval_default = evaluation_interval(prom)
    failures, for_s, eval_s = echo_alert(os.path.join(root, "alerts", "pacs-agent.rules.yml"), eval_default)
    targets = echo_targets(os.path.join(root, "deploy", "pacs-agent.toml"))
    return {
        "targets": targets,
        "probe_interval_s": max(t[1] for t in targets),
        "probe_timeout_s": max(t[2] for t in targets),
        "scrape_interval_s": scrape_interval(prom),
        "evaluation_interval_s": eval_s,
        "failures_in_a_row": failures,
        "for_s": for_s,
        "group_wait_s": critical_group_wait(os.path.join(root, "deploy", "alertmanager", "alertmanager.yml")),
    }


def worst_case(t):
    """[(term, seconds)] whose sum is the longest outage -> page the settings allow."""
    e = t["evaluation_interval_s"]
    return [
        (f"{t['failures_in_a_row']} x probe interval", t["failures_in_a_row"] * t["probe_interval_s"]),
        ("probe timeout", t["probe_timeout_s"]),
        ("scrape interval", t["scrape_interval_s"]),
        ("evaluation interval", e),
        ("for:", math.ceil(t["for_s"] / e) * e if e else t["for_s"]),
        ("group_wait", t["group_wait_s"]),
    ] + ([("remote-write flush", t["flush_s"])] if t.get("flush_s") else []) + [
        ("processing slack", SLACK_S),
    ]


def typical(t):
    """Mean outage -> page with uniformly random phases and a fast failure (refused)."""
    e = t["evaluation_interval_s"]
    return (t["probe_interval_s"] / 2 + (t["failures_in_a_row"] - 1) * t["probe_interval_s"]
            + t["scrape_interval_s"] / 2 + e / 2 + math.ceil(t["for_s"] / e) * e + t["group_wait_s"]
            + t.get("flush_s", 0))
