"""Shared by the deploy tests: paths, the series a worker exports, a PromQL name tokenizer,
promtool, a prometheus server to run against a target, and readers for the dashboard and
the alert rules."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from agents.broker import free_port
from agents.kafka.metrics import Metrics
from agents.process import parent_death_signal

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "journey.json"
RULES = DEPLOY / "prometheus" / "journey-rules.yml"
RULE_TESTS = DEPLOY / "prometheus" / "journey-rules.test.yml"
PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "k8s"
OPERATIONS_DOC = REPO / "docs" / "operations.md"

# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})
# Grafana's interval variables, replaced by a plain duration before PromQL sees the query.
GRAFANA_INTERVALS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
TOPIC_SUFFIXES = ("events", "churn-warnings", "recall-triggers", "lifecycle-transitions",
                  "dead-letter", "events-repartition")


# --------------------------------------------------------------------------------------------
# What the worker exports


def exported_series() -> dict[str, frozenset[str]]:
    """Every sample name a worker exposes (suffix forms included), with its label names."""
    metrics = Metrics()
    for collector in vars(metrics).values():
        # A labelled metric shows no samples until it has a child; give each one.
        if isinstance(collector, MetricWrapperBase) and collector._labelnames:
            collector.labels(**{name: "x" for name in collector._labelnames})
    series: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            series.setdefault(sample.name, set()).update(sample.labels)
    series["up"] = set()
    return {name: frozenset(labels) | TARGET_LABELS for name, labels in series.items()}


def exported_families() -> set[str]:
    return {family.name for family in Metrics().registry.collect()}


# --------------------------------------------------------------------------------------------
# A PromQL tokenizer that is just good enough to find metric and label names

PROMQL_FUNCTIONS = frozenset({
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile", "limitk", "limit_ratio", "abs", "absent", "absent_over_time", "acos",
    "acosh", "asin", "asinh", "atan", "atanh", "avg_over_time", "ceil", "changes", "clamp",
    "clamp_max", "clamp_min", "cos", "cosh", "count_over_time", "day_of_month", "day_of_week",
    "day_of_year", "days_in_month", "deg", "delta", "deriv", "exp", "floor", "histogram_avg",
    "histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev",
    "histogram_stdvar", "histogram_sum", "holt_winters", "double_exponential_smoothing", "hour",
    "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time", "ln",
    "log10", "log2", "mad_over_time", "max_over_time", "min_over_time", "minute", "month", "pi",
    "predict_linear", "present_over_time", "quantile_over_time", "rad", "rate", "resets",
    "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_desc", "sort_by_label",
    "sort_by_label_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan",
    "tanh", "time", "timestamp", "vector", "year",
})
# Followed by a parenthesised list of label names (group_left/right: optionally).
LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})

_TOKEN = re.compile(r"""
      (?P<space>\s+|\#[^\n]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<range>\[[^\]]*\])
    | (?P<variable>\$\{[^}]*\}|\$\w+|\[\[\w+\]\])
    | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:(?:ms|[smhdwy])\d*)*)
    | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<punct>[(){},@]|==|!=|>=|<=|=~|!~|[-+*/%^<>=])
""", re.VERBOSE)


@dataclass(frozen=True)
class Names:
    metrics: frozenset[str]
    labels: frozenset[str]


def tokenize(expr: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot tokenize {expr[pos:pos + 20]!r} in {expr!r}")
        kind = m.lastgroup or ""
        if kind != "space":
            tokens.append((kind, m.group()))
        pos = m.end()
    return tokens


def promql_names(expr: str) -> Names:
    """Metric names and label names an expression mentions (functions and keywords skipped)."""
    tokens = tokenize(expr)
    metrics: set[str] = set()
    labels: set[str] = set()
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "ident" and text in LABEL_LIST_KEYWORDS:
            i += 1
            if following == "(":
                i += 1
                while tokens[i][1] != ")":
                    if tokens[i][0] == "ident":
                        labels.add(tokens[i][1])
                    i += 1
                i += 1
            continue
        if kind == "punct" and text == "{":
            # Label matchers: name op "value", ...
            i += 1
            while tokens[i][1] != "}":
                if tokens[i][0] == "ident":
                    name, value = tokens[i][1], tokens[i + 2][1]
                    if name == "__name__":
                        metrics.add(value[1:-1])
                    else:
                        labels.add(name)
                    i += 3
                else:
                    i += 1
            i += 1
            continue
        if kind == "ident" and (following == "(" or following in ("by", "without")):
            # A call, or an aggregation with its grouping first: sum by (x) (...).
            if text not in PROMQL_FUNCTIONS:
                raise ValueError(f"unknown PromQL function {text!r} in {expr!r}")
        elif kind == "ident" and text.lower() not in KEYWORDS:
            metrics.add(text)
        i += 1
    return Names(frozenset(metrics), frozenset(labels))


def unknown_names(expr: str, series: dict[str, frozenset[str]]) -> list[str]:
    """Problems with an expression: metrics not exported, labels none of its metrics has."""
    names = promql_names(expr)
    problems = [f"metric {m!r} is not exported" for m in sorted(names.metrics - series.keys())]
    known_labels = set(TARGET_LABELS)
    for metric in names.metrics & series.keys():
        known_labels |= series[metric]
    problems += [f"label {lb!r} is on none of {sorted(names.metrics)}"
                 for lb in sorted(names.labels - known_labels)]
    return problems


# --------------------------------------------------------------------------------------------
# promtool and the prometheus server


@dataclass(frozen=True)
class PromTools:
    promtool: str
    prometheus: str


@pytest.fixture(scope="session")
def prom_tools() -> PromTools:
    """promtool and prometheus, got by tools/ensure-promtool if missing. Without them the
    test is skipped with the script's reason, or fails when JOURNEY_REQUIRE_PROMTOOL=1."""
    proc = subprocess.run(["bash", str(REPO / "tools" / "ensure-promtool")],
                          check=False, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"tools/ensure-promtool failed:\n{proc.stdout}\n{proc.stderr}")
    paths = dict(line.split(": ", 1) for line in proc.stdout.splitlines()
                 if line.startswith(("promtool: ", "prometheus: ")))
    if not paths:
        if os.environ.get("JOURNEY_REQUIRE_PROMTOOL") == "1":
            pytest.fail(proc.stdout + proc.stderr)
        pytest.skip(proc.stdout.strip())
    tools = PromTools(promtool=paths.get("promtool", ""), prometheus=paths.get("prometheus", ""))
    for path in (tools.promtool, tools.prometheus):
        assert path and os.access(path, os.X_OK), proc.stdout
    return tools


def promtool(tools: PromTools, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tools.promtool, *args], check=False, capture_output=True, text=True,
                          timeout=300)


def query(url: str, expr: str) -> list[dict[str, Any]]:
    """The result vector of an instant query against the server at ``url``."""
    qs = urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(f"{url}/api/v1/query?{qs}", timeout=10) as resp:
        body = json.load(resp)
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


@dataclass
class PrometheusServer:
    """A ``prometheus`` process serving its HTTP API on a loopback port."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        return query(self.url, expr)

    def samples(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """{sorted label pairs without __name__, job and instance: value} of a query."""
        out = {}
        for row in self.query(expr):
            labels = {k: v for k, v in row["metric"].items()
                      if k != "__name__" and k not in TARGET_LABELS}
            out[tuple(sorted(labels.items()))] = float(row["value"][1])
        return out

    def value(self, expr: str) -> float | None:
        """The one value of a query that returns at most one series; None when empty."""
        rows = self.query(expr)
        assert len(rows) <= 1, f"{expr} returned {len(rows)} series: {rows}"
        return float(rows[0]["value"][1]) if rows else None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str,
                 interval: float = 0.5) -> Any:
        """Poll ``predicate`` until it returns something truthy (an API that does not
        answer yet counts as not yet); fail with the server's log on timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = predicate()
            except (OSError, urllib.error.URLError):
                got = None
            if got:
                return got
            if self.proc.poll() is not None:
                pytest.fail(f"prometheus exited ({self.proc.returncode}) while waiting for "
                            f"{what}; log:\n{self.log_tail()}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; prometheus "
                            f"log:\n{self.log_tail()}", pytrace=False)
            time.sleep(interval)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not go in time."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


def _ready(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/-/ready", timeout=5) as resp:
        return bool(resp.status == 200)


@contextmanager
def prometheus_server(tools: PromTools, work: Path, targets: Sequence[str],
                      job: str = "journey", scrape_interval: str = "1s",
                      startup_timeout: float = 60.0) -> Iterator[PrometheusServer]:
    """A prometheus scraping ``targets`` (host:port) as ``job``, its config, data and log
    under ``work``; stopped on leaving, whatever happened, and killed by the kernel should
    the test process die first."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
    }))
    port = free_port()
    log_path = work / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [tools.prometheus, f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=parent_death_signal())  # noqa: PLW1509
    server = PrometheusServer(proc, f"http://127.0.0.1:{port}", log_path)
    try:
        server.wait_for(lambda: _ready(server.url), startup_timeout, "prometheus to be ready")
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# Readers


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel that is not a row, including those nested in collapsed rows."""
    out: list[dict[str, Any]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            if p.get("type") == "row":
                walk(p.get("panels", []))
            else:
                out.append(p)
    walk(dashboard()["panels"])
    return out


def panel_queries() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in dashboard_panels() for t in p.get("targets", [])
            if t.get("expr")]


def as_promql(expr: str) -> str:
    for var, duration in GRAFANA_INTERVALS.items():
        expr = expr.replace(var, duration)
    return expr


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]
