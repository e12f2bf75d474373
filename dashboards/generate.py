#!/usr/bin/env python3
"""Generates the provisionable Grafana dashboards in this folder (python3 stdlib).

Edit the panels here, run `python3 dashboards/generate.py`, commit the JSON. The JSON is
what Grafana loads and what scripts/check-dashboards lints and runs against Prometheus.
`python3 dashboards/generate.py --check` exits 1 when the committed JSON is not what this
script produces (ctest dashboards_generated).

Every query filters on $site, $job and $instance (use the selectors below) and never
aggregates `instance` away, so the dashboards work unchanged on one Prometheus, a
federating one or VictoriaMetrics fed by many sites. `site` is the external label each
site's Prometheus/vmagent attaches (docs/scaling.md); the variable's "All" value is `.*`,
which also matches series without a `site` label (one Prometheus without external labels).

Selectors for new panels (put them inside {...}, add more matchers after a comma):
  AGENT_SEL  site, job, instance          (agent-level series: up, pacs_agent_*)
  SEL        AGENT_SEL + target           (every probe series)
"""
import argparse
import difflib
import glob
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DS = {"type": "prometheus", "uid": "${datasource}"}
AGENT_SEL = 'site=~"$site", job=~"$job", instance=~"$instance"'
SEL = AGENT_SEL + ', target=~"$target"'
# Sites without an external label show under this name in per-site panels.
NO_SITE = "(no site label)"


def by_site(expr):
    """Names the empty `site` of a `... by (site)` result, so per-site panels read well on a
    single Prometheus without external labels too (label_replace is PromQL and MetricsQL)."""
    return f'label_replace({expr}, "site", "{NO_SITE}", "site", "")'


def var_datasource():
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": [], "skipUrlSync": False}


def var_query(name, label, query, multi=True):
    return {"name": name, "label": label, "type": "query", "datasource": DS,
            "definition": query, "query": {"query": query, "refId": f"{name}-variable"},
            "refresh": 2, "includeAll": True, "multi": multi, "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": [], "regex": "", "sort": 1, "hide": 0, "skipUrlSync": False}


def templating(target_probe_re):
    return {"list": [
        var_datasource(),
        var_query("site", "Site", "label_values(pacs_agent_build_info, site)"),
        var_query("job", "Job", 'label_values(pacs_agent_build_info{site=~"$site"}, job)'),
        var_query("instance", "Agent (node)", 'label_values(pacs_agent_build_info{site=~"$site", job=~"$job"}, instance)'),
        var_query("target", "Target",
                  f'label_values(pacs_probe_success{{{AGENT_SEL}, probe=~"{target_probe_re}"}}, target)'),
    ]}


class Panels:
    def __init__(self):
        self.items, self.y, self.x, self.row_h, self.next_id = [], 0, 0, 0, 1

    def add(self, kind, title, desc, unit, exprs, w=12, h=8, legend=None, options=None, mappings=None,
            instant=False, fmt=None, thresholds=None, links=None, custom=None):
        if self.x + w > 24:
            self.x, self.y = 0, self.y + self.row_h
            self.row_h = 0
        targets = []
        for i, e in enumerate(exprs if isinstance(exprs, list) else [exprs]):
            expr, leg = (e if isinstance(e, tuple) else (e, legend))
            t = {"datasource": DS, "expr": expr, "refId": chr(ord("A") + i), "range": not instant,
                 "instant": instant}
            if leg:
                t["legendFormat"] = leg
            if fmt:
                t["format"] = fmt
            targets.append(t)
        defaults = {"unit": unit, "mappings": mappings or []}
        if thresholds:
            defaults["thresholds"] = {"mode": "absolute", "steps": thresholds}
        if custom:
            defaults["custom"] = custom
        if links:
            defaults["links"] = links
        p = {"id": self.next_id, "type": kind, "title": title, "description": desc, "datasource": DS,
             "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h},
             "fieldConfig": {"defaults": defaults, "overrides": []},
             "options": options or {}, "targets": targets}
        self.items.append(p)
        self.next_id += 1
        self.x += w
        self.row_h = max(self.row_h, h)

    def row(self, title):
        self.x, self.y = 0, self.y + self.row_h
        self.items.append({"id": self.next_id, "type": "row", "title": title, "collapsed": False,
                           "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": []})
        self.next_id += 1
        self.y += 1
        self.row_h = 0


UPDOWN = [{"type": "value", "options": {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}}]
OKFAIL = [{"type": "value", "options": {"0": {"text": "FAIL", "color": "red"}, "1": {"text": "OK", "color": "green"}}}]
RG = [{"color": "red", "value": None}, {"color": "green", "value": 1}]
GR = [{"color": "green", "value": None}, {"color": "red", "value": 1}]
TS = {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
      "tooltip": {"mode": "multi", "sort": "desc"}}


def field_link(title, uid):
    """Data link to another dashboard for the clicked series (its site, node and target)."""
    return [{"title": title, "url": f"/d/{uid}?${{__url_time_range}}&var-datasource=${{datasource}}"
             "&var-site=${__field.labels.site}&var-instance=${__field.labels.instance}"
             "&var-target=${__field.labels.target}"}]


def ae_link(title="AE detail"):
    return field_link(title, "pacs-ae-detail")


def storage_link():
    return field_link("Storage and capacity", "pacs-storage-capacity")


def dashboard(uid, title, desc, panels, target_probe_re):
    return {
        "id": None, "uid": uid, "title": title, "description": desc,
        "tags": ["pacs", "pacs-agent"], "timezone": "browser", "editable": False,
        "graphTooltip": 1, "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"}, "timepicker": {},
        "annotations": {"list": [{
            "name": "PACS alerts", "enable": True, "datasource": DS, "iconColor": "red",
            "expr": f'ALERTS{{alertname=~"Pacs.*", alertstate="firing", {AGENT_SEL}}}',
            "titleFormat": "{{ alertname }}", "textFormat": "{{ site }} {{ instance }} {{ target }} ({{ severity }})",
            "step": "1m", "useValueForTime": False}]},
        "links": [{"title": "PACS dashboards", "type": "dashboards", "tags": ["pacs"], "asDropdown": False,
                   "includeVars": True, "keepTime": True, "targetBlank": False, "icon": "external link"}],
        "templating": templating(target_probe_re), "panels": panels.items,
    }


def fleet():
    p = Panels()
    p.row("Sites")
    site_stat = {"colorMode": "background", "graphMode": "none", "textMode": "value_and_name",
                 "reduceOptions": {"calcs": ["lastNotNull"]}}
    p.add("bargauge", "Availability by site (5m)", "Share of successful probe runs per site over the last "
          "5 minutes (mean of pacs:probe_success:avg5m over the site's probes), worst first. `site` is "
          f"the external label of the site's Prometheus or vmagent; {NO_SITE} = series without one.",
          "percentunit", f'sort({by_site(f"avg by (site) (pacs:probe_success:avg5m{{{SEL}}})")})', w=12, h=6,
          legend="{{site}}", instant=True,
          thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 0.9},
                      {"color": "green", "value": 0.99}],
          options={"displayMode": "lcd", "orientation": "horizontal", "reduceOptions": {"calcs": ["lastNotNull"]}})
    p.add("stat", "Failing probes by site", "Probes whose last run failed (pacs_probe_success == 0), per site. "
          "Open the probe status below to see which.", "none",
          by_site(f"sum by (site) (pacs_probe_success{{{SEL}}} == bool 0)"), w=6, h=6, legend="{{site}}",
          instant=True, thresholds=GR, options=site_stat)
    p.add("stat", "Agents down by site", "Agents the site's scraper cannot reach (up == 0, PacsAgentDown), per "
          "site. A whole site missing here (no value at all) means its vmagent/Prometheus sends nothing: "
          "check the site link and its remote-write buffer (docs/scaling.md).", "none",
          by_site(f"sum by (site) (up{{{AGENT_SEL}}} == bool 0)"), w=6, h=6, legend="{{site}}", instant=True,
          thresholds=GR, options=site_stat)
    p.row("Agents")
    p.add("stat", "Agent scrape status", "up per agent: DOWN means Prometheus cannot scrape the agent "
          "(agent or node down, PacsAgentDown). Every node monitored by a pacs-agent appears here.",
          "none", f'up{{{AGENT_SEL}}}', w=12, h=5, legend="{{site}} {{instance}}", instant=True,
          mappings=UPDOWN, thresholds=RG, options={"colorMode": "background", "graphMode": "none",
                                                    "reduceOptions": {"calcs": ["lastNotNull"]}, "textMode": "value_and_name"})
    p.add("table", "Agent versions", "pacs_agent_build_info per agent: version, DCMTK version and compiler. "
          "Mixed versions across the fleet show up here.", "none",
          f'pacs_agent_build_info{{{AGENT_SEL}}}', w=6, h=5, instant=True, fmt="table")
    p.add("stat", "Config reload", "pacs_agent_config_last_reload_successful: FAIL means the last reload was "
          "rejected and the previous configuration is still running (PacsAgentConfigReloadFailed).", "none",
          f'pacs_agent_config_last_reload_successful{{{AGENT_SEL}}}', w=6, h=5,
          legend="{{site}} {{instance}}", instant=True, mappings=OKFAIL, thresholds=RG,
          options={"colorMode": "background", "graphMode": "none", "reduceOptions": {"calcs": ["lastNotNull"]}})
    p.row("Probes")
    p.add("state-timeline", "Probe status", "pacs_probe_success per node, check and target: green OK, red FAIL. "
          "Click a row to open the AE detail dashboard.", "none",
          f'pacs_probe_success{{{SEL}}}', w=24, h=10, legend="{{site}} {{instance}} {{probe}} {{target}}",
          mappings=OKFAIL, thresholds=RG, links=ae_link(),
          options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8})
    p.add("bargauge", "Availability (5m)", "Share of successful probe runs over the last 5 minutes "
          "(recording rule pacs:probe_success:avg5m), worst first.", "percentunit",
          f'sort(pacs:probe_success:avg5m{{{SEL}}})', w=12, h=10, legend="{{site}} {{instance}} {{probe}} {{target}}",
          instant=True, thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 0.9},
                                    {"color": "green", "value": 0.99}],
          options={"displayMode": "lcd", "orientation": "horizontal", "reduceOptions": {"calcs": ["lastNotNull"]}},
          links=ae_link())
    p.add("bargauge", "Worst latencies (p90, 5m)", "The 10 slowest probes: 90th percentile of the run time "
          "over 5 minutes (recording rule pacs:probe_run_duration_seconds:p90_5m).", "s",
          f'topk(10, pacs:probe_run_duration_seconds:p90_5m{{{SEL}}})', w=12, h=10,
          legend="{{site}} {{instance}} {{probe}} {{target}}", instant=True,
          thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.5}, {"color": "red", "value": 1}],
          options={"displayMode": "gradient", "orientation": "horizontal", "reduceOptions": {"calcs": ["lastNotNull"]}},
          links=ae_link())
    p.add("timeseries", "Failures by reason", "Failed probe runs per second by reason code "
          "(connection_refused, dimse_timeout, io_error, ...; see docs/metrics.md).", "ops",
          f'sum by (site, job, instance, probe, target, reason) (rate(pacs_probe_failures_total{{{SEL}}}[$__rate_interval]))',
          w=12, h=9, legend="{{site}} {{instance}} {{target}} {{reason}}", options=TS,
          custom={"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal"}})
    p.add("timeseries", "Consecutive failed runs", "Failed runs in a row per probe "
          "(pacs:probe_consecutive_failures); PacsDicomEchoFailing pages at 2.", "none",
          f'pacs:probe_consecutive_failures{{{SEL}}}', w=12, h=9, legend="{{site}} {{instance}} {{probe}} {{target}}",
          options=TS)
    p.add("timeseries", "Last run duration", "Wall time of each probe's last run (pacs_probe_duration_seconds).",
          "s", f'pacs_probe_duration_seconds{{{SEL}}}', w=12, h=9, legend="{{site}} {{instance}} {{probe}} {{target}}",
          options=TS)
    p.add("timeseries", "Skipped runs", "Runs not started because the previous one was still going "
          "(PacsProbeRunsSkipped): the timeout is longer than the interval or the peer is slow.", "ops",
          f'rate(pacs_probe_skipped_runs_total{{{SEL}}}[$__rate_interval])', w=12, h=9,
          legend="{{site}} {{instance}} {{probe}} {{target}}", options=TS)
    p.add("table", "Firing PACS alerts", "Alerts from alerts/pacs-agent.rules.yml firing now on these agents "
          "(ALERTS series of the Prometheus that evaluates the rules).", "none",
          f'ALERTS{{alertname=~"Pacs.*", alertstate="firing", {AGENT_SEL}}}', w=24, h=7,
          instant=True, fmt="table")
    return dashboard("pacs-fleet-overview", "PACS fleet overview",
                     "Every PACS node and application entity: up/down, failure reasons, worst latencies.", p, ".*")


def ae():
    p = Panels()
    s = f'{SEL}, probe=~"dicom_.*"'
    p.add("state-timeline", "DICOM probe status", "pacs_probe_success per DICOM check (echo, find, worklist, "
          "store, retrieve, commit).",
          "none", f'pacs_probe_success{{{s}}}', w=24, h=6, legend="{{instance}} {{probe}} {{target}}",
          mappings=OKFAIL, thresholds=RG, options={"showValue": "never", "mergeValues": True})
    p.add("timeseries", "Phase latencies", "Time spent in each phase of the last run: connect (TCP), "
          "associate (A-ASSOCIATE), dimse (request to final response), release. Slow associate often "
          "means reverse DNS or an overloaded PACS.", "s",
          f'pacs_dicom_phase_duration_seconds{{{s}}}', w=12, h=9, legend="{{target}} {{probe}} {{phase}}",
          options=TS, custom={"stacking": {"mode": "normal"}, "fillOpacity": 30})
    p.add("timeseries", "Run duration percentiles", "p50/p90/p99 of the probe run time from the "
          "pacs_probe_run_duration_seconds histogram.", "s",
          [(f'histogram_quantile({q}, sum by (site, job, instance, probe, target, le) '
            f'(rate(pacs_probe_run_duration_seconds_bucket{{{s}}}[$__rate_interval])))', f"p{int(q*100)} {{{{target}}}} {{{{probe}}}}")
           for q in (0.5, 0.9, 0.99)], w=12, h=9, options=TS)
    p.add("timeseries", "DIMSE status", "DIMSE status of the last final response (0 = success; 0xA700 out of "
          "resources, 0xC000.. unable to process, 0xFE00 cancelled). Absent when no response came.", "none",
          f'pacs_dicom_dimse_status{{{s}}}', w=12, h=8, legend="{{target}} {{probe}}", options=TS)
    p.add("table", "Association rejects", "A-ASSOCIATE-RJ details after a reject: result (1 permanent, 2 "
          "transient), source (1 user, 2 ACSE, 3 presentation), reason (7 = called AE title not recognized, "
          "3 = calling AE title not recognized).", "none",
          [(f'pacs_dicom_association_reject_result{{{s}}}', "result"),
           (f'pacs_dicom_association_reject_source{{{s}}}', "source"),
           (f'pacs_dicom_association_reject_reason{{{s}}}', "reason")], w=12, h=8, instant=True, fmt="table")
    p.add("timeseries", "Failures by reason", "Failed DICOM probe runs per second by reason code.", "ops",
          f'sum by (site, job, instance, probe, target, reason) (rate(pacs_probe_failures_total{{{s}}}[$__rate_interval]))',
          w=12, h=8, legend="{{target}} {{probe}} {{reason}}", options=TS,
          custom={"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal"}})
    p.add("timeseries", "C-FIND matches", "Matches (pending responses) returned by the canary C-FIND and "
          "worklist items; counts only, never patient data. PacsDicomQueryNoMatches compares them with "
          "the expectations in alerts/pacs-expectations.rules.yml.", "none",
          [(f'pacs_dicom_find_matches{{{SEL}}}', "{{target}} matches"),
           (f'pacs_dicom_worklist_items{{{SEL}}}', "{{target}} worklist items")], w=12, h=8, options=TS)
    p.add("timeseries", "C-FIND first response", "Time from the C-FIND request to the first response: the "
          "archive's database query time.", "s", f'pacs_dicom_find_first_response_seconds{{{SEL}}}',
          w=12, h=8, legend="{{target}}", options=TS)
    p.add("stat", "TLS certificate validity", "Time until the DICOM-TLS certificate of the peer expires "
          "(PacsDicomTlsCertificateExpiring: warning under 14 days, critical under 3).", "s",
          f'pacs_dicom_tls_cert_expiry_timestamp_seconds{{{s}}} - time()', w=12, h=8, legend="{{target}}",
          instant=True, thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 259200},
                                    {"color": "green", "value": 1209600}],
          options={"colorMode": "value", "graphMode": "none", "reduceOptions": {"calcs": ["lastNotNull"]}})
    p.row("Image round trip (store, retrieve, commit)")
    p.add("timeseries", "Store and findable time", "The canary round trip of the store check: C-STORE request "
          "to response (pacs_dicom_store_seconds) and C-STORE response until C-FIND finds it "
          "(pacs_dicom_store_findable_seconds; PacsDicomStoreFindableSlow warns above 10 s on average).", "s",
          [(f'pacs_dicom_store_seconds{{{SEL}}}', "{{target}} C-STORE"),
           (f'pacs_dicom_store_findable_seconds{{{SEL}}}', "{{target}} findable after")], w=12, h=8, options=TS)
    p.add("timeseries", "Canary studies in the archive", "Studies of the agent's test patient left in the archive "
          "after each store run (pacs_dicom_canary_studies): flat at 0 while the cleanup works; "
          "PacsDicomCanaryStudiesPilingUp warns when they pile up. Cleanup success per check below 1 means the "
          "last cleanup failed (retried by the next runs).", "none",
          [(f'pacs_dicom_canary_studies{{{SEL}}}', "{{target}} canary studies"),
           (f'pacs_dicom_canary_cleanup_success{{{SEL}}}', "{{target}} {{probe}} cleanup ok")], w=12, h=8,
          options=TS)
    p.add("timeseries", "Retrieve sub-operations", "C-GET/C-MOVE sub-operations of the retrieve check's last run by "
          "result, as the archive reported them, and the instances that actually reached the agent "
          "(pacs_dicom_retrieve_instances). Completed without instances: the archive sent them elsewhere.", "none",
          [(f'pacs_dicom_retrieve_suboperations{{{SEL}}}', "{{target}} {{result}}"),
           (f'pacs_dicom_retrieve_instances{{{SEL}}}', "{{target}} received")], w=12, h=8, options=TS)
    p.add("timeseries", "Retrieve and commitment latency", "Request to first instance of the retrieve check "
          "(pacs_dicom_retrieve_first_instance_seconds) and N-ACTION request to the storage commitment report "
          "(pacs_dicom_commit_seconds).", "s",
          [(f'pacs_dicom_retrieve_first_instance_seconds{{{SEL}}}', "{{target}} first instance"),
           (f'pacs_dicom_commit_seconds{{{SEL}}}', "{{target}} commitment report")], w=12, h=8, options=TS)
    return dashboard("pacs-ae-detail", "PACS application entity detail",
                     "One DICOM application entity: phase latencies, DIMSE status, rejects, C-FIND matches, "
                     "the image round trip.", p, "dicom_.*")


def storage():
    p = Panels()
    fs = f'{SEL}, probe="filesystem"'
    q = f'{SEL}, probe=~"queue_.*"'
    p.row("Volumes")
    p.add("bargauge", "Days until full", "Days until the volume's available space reaches 0 at the growth "
          "rate of the last 6 hours (pacs:filesystem_days_until_full); only growing volumes are shown.", "d",
          f'sort(pacs:filesystem_days_until_full{{{fs}}})', w=8, h=8, legend="{{instance}} {{target}}",
          instant=True, thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 7},
                                    {"color": "green", "value": 30}],
          options={"displayMode": "lcd", "orientation": "horizontal", "reduceOptions": {"calcs": ["lastNotNull"]}},
          links=storage_link())
    p.add("bargauge", "Space available", "Share of the volume available to the PACS user "
          "(avail / size; PacsFilesystemAlmostOutOfSpace warns under 10%).", "percentunit",
          f'sort(pacs:filesystem_avail:ratio{{{fs}}})', w=8, h=8, legend="{{instance}} {{target}}",
          instant=True, thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 0.1},
                                    {"color": "green", "value": 0.2}],
          options={"displayMode": "lcd", "orientation": "horizontal", "reduceOptions": {"calcs": ["lastNotNull"]}})
    p.add("bargauge", "Growth per day", "Bytes consumed per day, from the 6-hour trend of available space "
          "(pacs:filesystem_growth_bytes:per_day; negative = space being freed).", "bytes",
          f'pacs:filesystem_growth_bytes:per_day{{{fs}}}', w=8, h=8, legend="{{instance}} {{target}}",
          instant=True, options={"displayMode": "gradient", "orientation": "horizontal",
                                 "reduceOptions": {"calcs": ["lastNotNull"]}})
    p.add("timeseries", "Available space", "pacs_filesystem_avail_bytes over time with the volume size.",
          "bytes", [(f'pacs_filesystem_avail_bytes{{{fs}}}', "{{instance}} {{target}} available"),
                    (f'pacs_filesystem_size_bytes{{{fs}}}', "{{instance}} {{target}} size")], w=12, h=8, options=TS)
    p.add("timeseries", "Inodes free", "Share of free inodes (one DICOM instance = one file); volumes without "
          "an inode table are left out.", "percentunit",
          f'pacs_filesystem_files_free{{{fs}}} / (pacs_filesystem_files{{{fs}}} > 0)', w=12, h=8,
          legend="{{instance}} {{target}}", options=TS)
    p.add("state-timeline", "Read-only and stuck mounts", "pacs_filesystem_readonly (1 = mounted read-only) "
          "and pacs_filesystem_stuck (1 = statvfs has not returned, e.g. hung NFS).", "none",
          [(f'pacs_filesystem_readonly{{{fs}}}', "{{instance}} {{target}} read-only"),
           (f'pacs_filesystem_stuck{{{fs}}}', "{{instance}} {{target}} stuck")], w=24, h=6, mappings=[
              {"type": "value", "options": {"0": {"text": "no", "color": "green"}, "1": {"text": "YES", "color": "red"}}}],
          thresholds=GR, options={"showValue": "never", "mergeValues": True})
    p.row("Queues")
    p.add("timeseries", "Queue depth", "Items still to be processed per queue (spool files, pending/running "
          "jobs; pacs:queue_backlog_items).", "none", f'pacs:queue_backlog_items{{{q}}}', w=12, h=8,
          legend="{{instance}} {{target}}", options=TS)
    p.add("timeseries", "Oldest item age", "Age of the oldest waiting item / pending job "
          "(PacsQueueOldestItemTooOld: warning over 1 h, critical over 4 h).", "s",
          f'pacs_queue_oldest_item_age_seconds{{{q}}}', w=12, h=8, legend="{{instance}} {{target}}", options=TS)
    p.add("timeseries", "Jobs by state", "pacs_queue_items by state for job engines (Orthanc, dcm4chee): "
          "Pending, Running, Success, Failure, ...", "none", f'pacs_queue_items{{{q}, state!=""}}', w=12, h=8,
          legend="{{instance}} {{target}} {{state}}", options=TS)
    p.add("timeseries", "Failed jobs", "Jobs in a failed state (pacs:queue_failed_items); PacsQueueFailedJobsRising "
          "warns when 3 or more are added within an hour.", "none", f'pacs:queue_failed_items{{{q}}}', w=12, h=8,
          legend="{{instance}} {{target}}", options=TS)
    p.add("timeseries", "Spool size", "Bytes waiting in spool directories (pacs_queue_bytes).", "bytes",
          f'pacs_queue_bytes{{{q}}}', w=12, h=8, legend="{{instance}} {{target}}", options=TS)
    p.row("Archive contents")
    p.add("stat", "Archive studies", "Studies in the archive (Orthanc /statistics).", "none",
          f'pacs_archive_studies{{{q}}}', w=6, h=6, legend="{{instance}} {{target}}", instant=True,
          options={"graphMode": "area", "reduceOptions": {"calcs": ["lastNotNull"]}})
    p.add("stat", "Archive instances", "DICOM instances (images) in the archive.", "none",
          f'pacs_archive_instances{{{q}}}', w=6, h=6, legend="{{instance}} {{target}}", instant=True,
          options={"graphMode": "area", "reduceOptions": {"calcs": ["lastNotNull"]}})
    p.add("timeseries", "Archive growth", "Studies and instances stored over time.", "none",
          [(f'pacs_archive_studies{{{q}}}', "{{target}} studies"),
           (f'pacs_archive_instances{{{q}}}', "{{target}} instances")], w=6, h=6, options=TS)
    p.add("stat", "Archive stored bytes", "Bytes the archive reports as stored (after compression).", "bytes",
          f'pacs_archive_stored_bytes{{{q}}}', w=6, h=6, legend="{{instance}} {{target}}", instant=True,
          options={"graphMode": "area", "reduceOptions": {"calcs": ["lastNotNull"]}})
    capacity_trends(p)
    return dashboard("pacs-storage-capacity", "PACS storage and capacity",
                     "Volumes (days until full, growth), queues (depth, oldest age, failures), archive contents "
                     "and capacity trends (7/30-day growth, studies per modality, 30-day availability).",
                     p, "filesystem|queue_.*")


def capacity_trends(p):
    """Row fed by alerts/pacs-capacity.rules.yml (docs/capacity.md). DICOM panels filter on job and
    instance only: this dashboard's $target lists volumes and queues, not AEs."""
    fs = f'{SEL}, probe="filesystem"'
    node = AGENT_SEL
    p.row("Capacity trends")
    p.add("bargauge", "Days until full (7 d and 30 d trend)", "Days until the volume's available space is used "
          "up at the growth of the last 30 days and of the last 7 days (pacs:filesystem_days_until_full:30d / :7d). "
          "Only growing volumes with at least half the window of history are shown.", "d",
          [(f'sort(pacs:filesystem_days_until_full:30d{{{fs}}})', "{{instance}} {{target}} (30 d)"),
           (f'sort(pacs:filesystem_days_until_full:7d{{{fs}}})', "{{instance}} {{target}} (7 d)")],
          w=8, h=8, instant=True, thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 30},
                                               {"color": "green", "value": 90}],
          options={"displayMode": "lcd", "orientation": "horizontal", "reduceOptions": {"calcs": ["lastNotNull"]}},
          links=storage_link())
    p.add("timeseries", "Growth per day (7 d and 30 d)", "Bytes consumed per day: slope of used space (size - free) "
          "over the last 7 and 30 days (pacs:filesystem_growth_bytes:per_day_7d / _30d). Not fooled by a "
          "resize; negative = space freed.", "bytes",
          [(f'pacs:filesystem_growth_bytes:per_day_7d{{{fs}}}', "{{instance}} {{target}} 7 d"),
           (f'pacs:filesystem_growth_bytes:per_day_30d{{{fs}}}', "{{instance}} {{target}} 30 d")],
          w=16, h=8, options=TS)
    p.add("timeseries", "Studies per day per modality", "Studies in the last 24 hours per C-FIND target and "
          "modality (pacs:dicom_find_matches:increase1d, from the \"StudyDate = today\" count grouped by "
          "ModalitiesInStudy; correct across its midnight restart). PacsDicomStudiesBelowLastWeek compares "
          "today's count with last week's.", "none",
          f'pacs:dicom_find_matches:increase1d{{{node}, probe="dicom_find"}}', w=16, h=8,
          legend="{{instance}} {{target}} {{group}}", options=TS)
    p.add("bargauge", "Time since the newest study", "Per target and modality: time since the newest study "
          "(StudyDate/StudyTime) seen in the last 8 days (pacs:dicom_find_newest_study_timestamp_seconds). "
          "PacsDicomStudiesStopped warns when it passes 2 hours at a time that was busy last week.", "s",
          f'time() - max_over_time(pacs:dicom_find_newest_study_timestamp_seconds{{{node}, probe="dicom_find"}}[8d])',
          w=8, h=8, legend="{{instance}} {{target}} {{group}}", instant=True,
          thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 7200},
                      {"color": "red", "value": 86400}],
          options={"displayMode": "gradient", "orientation": "horizontal", "reduceOptions": {"calcs": ["lastNotNull"]}})
    p.add("bargauge", "DICOM availability per AE (30 d)", "Share of successful C-ECHO runs over the last 30 days "
          "(pacs:probe_success:avg30d): all successful runs / all runs; time without data counts neither way.",
          "percentunit", f'sort(pacs:probe_success:avg30d{{{node}, probe="dicom_echo"}})', w=12, h=8,
          legend="{{instance}} {{target}}", instant=True, links=ae_link(),
          thresholds=[{"color": "red", "value": None}, {"color": "orange", "value": 0.99},
                      {"color": "green", "value": 0.999}],
          options={"displayMode": "lcd", "orientation": "horizontal", "reduceOptions": {"calcs": ["lastNotNull"]}})
    p.add("timeseries", "DICOM availability per AE (30 d) over time", "pacs:probe_success:avg30d over the "
          "dashboard's time range: the trend of the 30-day availability per AE.", "percentunit",
          f'pacs:probe_success:avg30d{{{node}, probe="dicom_echo"}}', w=12, h=8,
          legend="{{instance}} {{target}}", options=TS)


def render():
    """{file name: JSON text} of every dashboard this script produces."""
    return {d["uid"] + ".json": json.dumps(d, indent=2, ensure_ascii=False) + "\n" for d in (fleet(), ae(), storage())}


def check(out_dir):
    """0 when the JSON files in out_dir are exactly what render() produces, else 1 (with diffs)."""
    want, problems = render(), []
    for name, text in sorted(want.items()):
        path = os.path.join(out_dir, name)
        try:
            with open(path, encoding="utf-8") as f:
                have = f.read()
        except OSError as e:
            problems.append(f"{name}: missing ({e.strerror})")
            continue
        if have != text:
            diff = list(difflib.unified_diff(have.splitlines(), text.splitlines(), f"{name} (committed)",
                                             f"{name} (generated)", n=1, lineterm=""))
            shown = "\n".join(diff[:40]) + ("\n..." if len(diff) > 40 else "")
            problems.append(f"{name}: differs from what generate.py produces:\n{shown}")
    for path in sorted(glob.glob(os.path.join(out_dir, "*.json"))):
        if os.path.basename(path) not in want:
            problems.append(f"{os.path.basename(path)}: not produced by generate.py (add it there or delete it)")
    for p in problems:
        print(f"generate.py --check: {p}", file=sys.stderr)
    if problems:
        print("generate.py --check: FAILED: the committed dashboards are out of date; run "
              "`python3 dashboards/generate.py` and commit the JSON", file=sys.stderr)
        return 1
    print(f"generate.py --check: OK, {len(want)} dashboards match the generator")
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on any difference")
    ap.add_argument("--dir", default=HERE, help="folder of the dashboard JSON (default: this folder)")
    a = ap.parse_args(argv)
    if a.check:
        return check(a.dir)
    for name, text in render().items():
        with open(os.path.join(a.dir, name), "w", encoding="utf-8") as f:
            f.write(text)
        print("wrote", name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
