"""The dashboard and the alert rules against what the worker exports.

They may only name series that ``agents.kafka.metrics.Metrics`` exports (or Prometheus' own
``up``); names are pulled out of each PromQL expression by the tokenizer in
``tests.support.deploy``, not by eye. promtool (Debian's ``prometheus`` package, installed
on demand by ``tools/ensure-promtool``) checks the rules, runs their unit tests and parses
every dashboard query; a ``prometheus`` server then runs every dashboard query against a
populated ``Metrics`` registry it scrapes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics import MetricWrapperBase

from agents.kafka.metrics import Metrics
from tests.support.deploy import (
    OPERATIONS_DOC,
    RULE_TESTS,
    RULES,
    PromTools,
    alert_rules,
    as_promql,
    dashboard,
    dashboard_panels,
    exported_families,
    exported_series,
    panel_queries,
    prometheus_server,
    promql_names,
    promtool,
    query,
    tokenize,
    unknown_names,
)

# --------------------------------------------------------------------------------------------
# The tokenizer itself

def test_tokenizer_separates_metrics_from_functions_labels_and_durations() -> None:
    names = promql_names(
        'histogram_quantile(0.95, sum by (le, job) (rate(a_bucket{x="1", y=~"b.*"}[5m]'
        ' offset 1d))) > 1e3 and on (job) group_left(pod) b_total{z!~"p"} unless'
        ' sum(c) without (w) / 2.5 or {__name__="d"} * Inf')
    assert names.metrics == {"a_bucket", "b_total", "c", "d"}
    assert names.labels == {"le", "job", "x", "y", "pod", "z", "w"}


def test_tokenizer_skips_grafana_variables_and_strings() -> None:
    names = promql_names('sum(rate(m_total{a="up or down"}[$__rate_interval])) by (a)'
                         ' + on() vector(0) + label_replace(n, "dst", "$1", "src", "(.*)")')
    assert names.metrics == {"m_total", "n"}
    assert names.labels == {"a"}


def test_tokenizer_rejects_unknown_functions() -> None:
    with pytest.raises(ValueError, match="unknown PromQL function 'rated'"):
        promql_names("rated(m_total[5m])")


def test_unknown_names_reports_missing_metrics_and_labels() -> None:
    series = exported_series()
    assert unknown_names("sum by (stage) (journey_users)", series) == []
    assert unknown_names("journey_users_total", series) == [
        "metric 'journey_users_total' is not exported"]
    assert unknown_names("sum by (stag) (journey_users)", series) == [
        "label 'stag' is on none of ['journey_users']"]


def test_exported_series_include_suffix_forms() -> None:
    series = exported_series()
    for name in ("journey_events_consumed_total", "journey_events_consumed_created",
                 "journey_processing_latency_seconds_bucket",
                 "journey_processing_latency_seconds_count",
                 "journey_processing_latency_seconds_sum", "journey_consumer_lag", "up"):
        assert name in series
    assert "le" in series["journey_processing_latency_seconds_bucket"]
    assert "journey_events_consumed" not in series


# --------------------------------------------------------------------------------------------
# promtool on the rules

def test_promtool_check_rules(prom_tools: PromTools) -> None:
    proc = promtool(prom_tools, "check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in proc.stdout


def test_promtool_test_rules(prom_tools: PromTools) -> None:
    proc = promtool(prom_tools, "test", "rules", str(RULE_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_rejects_a_broken_rule(prom_tools: PromTools, tmp_path: Path) -> None:
    # The checks above mean something only if promtool does fail on a bad expression.
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"alert": "A", "expr": "sum(rate(journey_alerts_total[5m])"}]}]}))
    assert promtool(prom_tools, "check", "rules", str(bad)).returncode != 0


# --------------------------------------------------------------------------------------------
# Grafana dashboard

def test_dashboard_identity_and_datasource() -> None:
    dash = dashboard()
    assert dash["uid"] == "journey"
    assert dash["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard_panels():
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_every_panel_has_a_query() -> None:
    panels = dashboard_panels()
    assert len(panels) >= 15
    for panel in panels:
        assert [t for t in panel.get("targets", []) if t.get("expr", "").strip()], panel["title"]


@pytest.mark.parametrize("title,expr", panel_queries(), ids=[t for t, _ in panel_queries()])
def test_dashboard_query_names_only_exported_series(title: str, expr: str) -> None:
    assert unknown_names(expr, exported_series()) == []


def test_dashboard_shows_every_exported_family() -> None:
    shown: set[str] = set()
    for _, expr in panel_queries():
        shown |= promql_names(expr).metrics
    # A family counts as shown if any of its sample names is used (x_total, x_bucket, ...).
    missing = sorted(f for f in exported_families()
                     if not any(m == f or m.startswith(f + "_") for m in shown))
    assert missing == []


def test_dashboard_latency_panels_use_histogram_buckets() -> None:
    quantile_exprs = [e for _, e in panel_queries() if "histogram_quantile" in e]
    histograms = {m for m in exported_series() if m.endswith("_bucket")}
    used: set[str] = set()
    for expr in quantile_exprs:
        used |= promql_names(expr).metrics & histograms
        assert "by (le" in expr.replace("  ", " "), expr
    assert used == histograms


def test_dashboard_queries_parse(prom_tools: PromTools, tmp_path: Path) -> None:
    # promtool only parses rule files, so each panel query becomes a recording rule.
    rules = [{"record": f"dashboard:query_{i}", "expr": as_promql(expr)}
             for i, (_, expr) in enumerate(panel_queries())]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = promtool(prom_tools, "check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def populated_metrics() -> Metrics:
    """A registry with a child for every labelled series and a little of everything."""
    metrics = Metrics()
    realistic = {"control": "true", "after_recall": "treated", "topic": "journey.events"}
    for collector in vars(metrics).values():
        if not isinstance(collector, MetricWrapperBase):
            continue
        names = collector._labelnames
        child = collector.labels(**{n: realistic.get(n, "x") for n in names}) if names \
            else collector
        if isinstance(child, Counter):
            child.inc(3)
        elif isinstance(child, Gauge):
            child.set(2)
        else:
            assert isinstance(child, Histogram)
            child.observe(0.2)
    return metrics


@pytest.fixture(scope="module")
def live_prometheus(prom_tools: PromTools, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[str]:
    """A prometheus server scraping a populated Metrics registry as job "journey"."""
    metrics = populated_metrics()
    exporter, exporter_thread = start_http_server(0, addr="127.0.0.1",
                                                  registry=metrics.registry)
    try:
        with prometheus_server(prom_tools, tmp_path_factory.mktemp("prometheus"),
                               [f"127.0.0.1:{exporter.server_port}"],
                               scrape_interval="500ms") as server:
            # rate() and increase() need two samples in range; wait for three scrapes.
            server.wait_for(
                lambda: (server.value('count_over_time(up{job="journey"}[1m])') or 0) >= 3,
                60, "three scrapes of the test registry")
            yield server.url
    finally:
        exporter.shutdown()
        exporter_thread.join(5)


def test_dashboard_queries_return_data(live_prometheus: str) -> None:
    empty = []
    for title, expr in panel_queries():
        if not query(live_prometheus, as_promql(expr)):
            empty.append(f"{title}: {expr}")
    assert empty == []


def test_rule_expressions_evaluate(live_prometheus: str) -> None:
    # Only that the server accepts them; whether they fire is journey-rules.test.yml's job.
    for rule in alert_rules():
        query(live_prometheus, rule["expr"])
    # And the healthy-path rules stay quiet on the populated registry (up=1, healthy=2).
    by_name = {r["alert"]: r for r in alert_rules()}
    assert query(live_prometheus, by_name["JourneyWorkerDown"]["expr"]) == []
    assert query(live_prometheus, by_name["JourneyWorkerUnhealthy"]["expr"]) == []


# --------------------------------------------------------------------------------------------
# Alert rules

def github_anchor(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_rules_cover_the_required_conditions() -> None:
    exprs = {r["alert"]: r["expr"] for r in alert_rules()}
    assert "deriv(journey_consumer_lag[10m]) > 0" in exprs["JourneyConsumerLagGrowing"]
    assert "rate(journey_events_consumed_total[" in exprs["JourneyNoEventsConsumed"]
    assert "journey_dead_letters_total" in exprs["JourneyDeadLetterRateHigh"]
    assert "journey_events_consumed_total" in exprs["JourneyDeadLetterRateHigh"]
    assert "journey_timer_backlog" in exprs["JourneyTimerBacklogGrowing"]
    assert 'up{job="journey"} == 0' in exprs["JourneyWorkerDown"]
    assert "journey_healthy == 0" in exprs["JourneyWorkerUnhealthy"]
    for name in ("JourneyAlertVolumeSpike", "JourneyAlertVolumeCollapse"):
        assert "journey_alerts_total[1h] offset 1d" in exprs[name]


@pytest.mark.parametrize("rule", alert_rules(), ids=[r["alert"] for r in alert_rules()])
def test_rule_names_only_exported_series(rule: dict[str, Any]) -> None:
    assert unknown_names(rule["expr"], exported_series()) == []


@pytest.mark.parametrize("rule", alert_rules(), ids=[r["alert"] for r in alert_rules()])
def test_rule_labels_and_annotations(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    notes = rule["annotations"]
    assert notes["summary"].strip() and notes["description"].strip()
    # absolute once Prometheus sets the external label runbook_base (see prometheus.yml)
    assert re.fullmatch(r"\{\{ \$externalLabels\.runbook_base \}\}/operations\.md#[a-z0-9-]+",
                        notes["runbook_url"])
    threshold = rule["labels"].get("threshold")
    if threshold is not None:
        # The label shows the operator the number in force; it must be the one in the expr.
        numbers = {text for kind, text in tokenize(rule["expr"]) if kind == "number"}
        ranges = {text[1:-1] for kind, text in tokenize(rule["expr"]) if kind == "range"}
        assert threshold in numbers | ranges, (threshold, rule["expr"])


def test_tunable_rules_carry_their_threshold() -> None:
    labelled = {r["alert"] for r in alert_rules() if "threshold" in r["labels"]}
    assert {"JourneyConsumerLagGrowing", "JourneyNoEventsConsumed", "JourneyAlertVolumeSpike",
            "JourneyAlertVolumeCollapse"} <= labelled


def test_runbook_links_are_absolute_in_the_shipped_prometheus() -> None:
    config = yaml.safe_load((RULES.parent / "prometheus.yml").read_text())
    base = config["global"]["external_labels"]["runbook_base"]
    assert re.fullmatch(r"https?://[^\s{}]+", base), base


def test_runbook_anchors_exist_in_operations_doc() -> None:
    text = OPERATIONS_DOC.read_text()
    anchors = {github_anchor(h) for h in re.findall(r"^#+\s+(.+?)\s*$", text, re.MULTILINE)}
    anchors |= set(re.findall(r'id="([^"]+)"', text))
    missing = [r["annotations"]["runbook_url"] for r in alert_rules()
               if r["annotations"]["runbook_url"].split("#", 1)[1] not in anchors]
    assert missing == []


def test_rule_unit_tests_cover_every_alert_both_ways() -> None:
    doc = yaml.safe_load(RULE_TESTS.read_text())
    fires: set[str] = set()
    quiet: set[str] = set()
    for group in doc["tests"]:
        for case in group.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {r["alert"] for r in alert_rules()}
    assert names - fires == set(), "no case where these fire"
    assert names - quiet == set(), "no case where these stay quiet"
    assert doc["rule_files"] == [RULES.name]
