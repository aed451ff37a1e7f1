"""The HTML backtest report: well-formed, self-contained, escaped, and its numbers right."""

from __future__ import annotations

import random
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest

from agents.cli.main import main
from streams import __version__
from streams.core.decode import to_object
from streams.core.event import Event
from streams.replay import Replay
from streams.replay.calibration import auc, reliability
from streams.replay.report import write_report
from streams.replay.svg import day_axis, line_chart, value_axis
from streams.settings import Settings
from streams.testing import DAY, make_event
from tests.support.lapses import END_DAY, lapse_stream

BASE = 1_767_225_600.0  # make_event's day 0
HOSTILE_ID = '<script>alert("x")</script>&'
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}


class StrictTree(HTMLParser):
    """Fails on any end tag that does not close the innermost open element; collects
    table rows as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.rows: list[list[str]] = []
        self.svgs = 0
        self.attrs: list[tuple[str, str | None]] = []
        self._cell: list[str] | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs += attrs
        self.svgs += tag == "svg"
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs += attrs

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> StrictTree:
    tree = StrictTree()
    tree.feed(html)
    tree.close()
    assert tree.errors == []
    assert tree.stack == [], f"left open: {tree.stack}"
    return tree


def history(seed: int = 11, users: int = 50) -> list[Event]:
    """Users who sign up, browse and buy at their own pace, then stop at a random day, so
    some are still active after day 90 and some are not; plus a hostile user id that
    signs up, makes a large order and vanishes (so it ranks among the riskiest)."""
    rng = random.Random(seed)
    events = [make_event(HOSTILE_ID, "signup", 0.5), make_event(HOSTILE_ID, "page_view", 1.0),
              make_event(HOSTILE_ID, "purchase", 1.5, amount=900.0, currency="EUR",
                         order_id="hostile-1")]
    for uid in (f"u{i:03d}" for i in range(users)):
        t = rng.uniform(0, 10)
        stop = rng.uniform(20, 130)
        events.append(make_event(uid, "signup", t))
        buys = rng.random() < 0.8
        while t < stop:
            t += rng.uniform(2, 20)
            if buys and rng.random() < 0.5:
                events.append(make_event(uid, "purchase", t, amount=round(rng.uniform(5, 90), 2),
                                         currency="EUR", order_id=f"{uid}-{t:.3f}"))
            else:
                events.append(make_event(uid, "page_view", t))
    return sorted(events, key=lambda e: e.occurred_at)


def replayed(events: list[Event], until: float | None) -> tuple[Replay, float]:
    replay = Replay(Settings(), received_at=BASE + 1000 * DAY, track_series=True)
    replay.feed(events, until=until)
    return replay, replay.finish(until)


@pytest.fixture(scope="module")
def backtest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Replay, float, str]:
    replay, as_of = replayed(history(), until=BASE + 90 * DAY)
    path = tmp_path_factory.mktemp("report") / "nested" / "report.html"
    write_report(path, replay, as_of)
    return replay, as_of, path.read_text(encoding="utf-8")


def _row(tree: StrictTree, first: str) -> list[str]:
    matches = [r for r in tree.rows if r and r[0] == first]
    assert len(matches) == 1, f"rows starting {first!r}: {matches}"
    return matches[0]


def test_report_is_well_formed_and_self_contained(backtest: tuple[Replay, float, str]) -> None:
    replay, _, html = backtest
    assert replay.summary.came_back, "the fixture must have events after the cut"
    tree = parse(html)
    assert tree.svgs == 3  # stages over time, alerts per day, reliability diagram
    assert html.count("<svg") == 3
    # nothing to fetch: no scripts, no links, no sources
    assert "<script" not in html.lower()
    names = {name for name, _ in tree.attrs}
    assert not names & {"src", "href"}
    assert "http" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_header_reports_summary_counts(backtest: tuple[Replay, float, str]) -> None:
    replay, _, html = backtest
    tree = parse(html)
    s = replay.summary
    assert _row(tree, "events read")[1] == f"{s.read:,}"
    assert _row(tree, "after the cut (--until)")[1] == f"{s.after_until:,}"
    assert _row(tree, "users")[1].startswith(f"{s.users:,}:")
    assert _row(tree, "purchase_cycle_days") == ["purchase_cycle_days", "30.0"]
    assert _row(tree, "control_share") == ["control_share", "0.1"]
    assert not [r for r in tree.rows if r[0] == "broker"]  # Kafka settings left out
    for kind, n in s.alerts.items():
        assert f"{kind} {n:,}" in _row(tree, "alerts")[1]


def test_auc_matches_an_independent_pairwise_count(backtest: tuple[Replay, float, str]) -> None:
    replay, as_of, html = backtest
    snaps = list(replay.snapshots(as_of))
    lost = {s["user_id"]: s["user_id"] not in replay.summary.came_back for s in snaps}

    def pairwise(score: dict[str, float]) -> float:
        pos = [v for u, v in score.items() if lost[u]]
        neg = [v for u, v in score.items() if not lost[u]]
        wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
        return wins / (len(pos) * len(neg))

    risk = {s["user_id"]: s["churn_risk"] for s in snaps}
    buyers = [s for s in snaps if s["recency_days"] is not None]
    assert 0 < len(buyers) < len(snaps)
    tree = parse(html)
    everyone = _row(tree, "all")
    assert everyone[1] == f"{len(snaps):,}"
    assert everyone[2] == f"{sum(lost.values()):,}"
    assert everyone[3] == f"{pairwise(risk):.3f}"
    bought = _row(tree, "buyers (have a recency)")
    assert bought[3] == f"{pairwise({s['user_id']: s['churn_risk'] for s in buyers}):.3f}"
    assert bought[4] == f"{pairwise({s['user_id']: s['recency_days'] for s in buyers}):.3f}"


def test_user_ids_are_escaped(backtest: tuple[Replay, float, str]) -> None:
    replay, as_of, html = backtest
    assert any(s["user_id"] == HOSTILE_ID for s in replay.snapshots(as_of))
    assert HOSTILE_ID not in html
    assert "<script" not in html.lower()
    # the hostile user is listed among the riskiest, and reads back intact once unescaped
    assert "&lt;script&gt;" in html
    assert HOSTILE_ID in [r[0] for r in parse(html).rows]


def test_no_events_after_the_cut_explains_instead_of_charting(tmp_path: Path) -> None:
    events = history(seed=5, users=20)
    replay, as_of = replayed(events, until=events[-1].occurred_at + DAY)
    assert replay.summary.after_until == 0
    path = tmp_path / "report.html"
    write_report(path, replay, as_of)
    html = path.read_text(encoding="utf-8")
    tree = parse(html)
    assert "Nothing in the log came after the cut" in "".join(tree.text)
    # the two time series and the churn model's live quality, no reliability diagram
    assert tree.svgs == 3
    assert not [r for r in tree.rows if r and r[0] == "all"]  # no AUC table
    assert "came back" not in [c for r in tree.rows for c in r]


def test_replay_without_series_still_renders(tmp_path: Path) -> None:
    replay = Replay(Settings(), received_at=BASE + 1000 * DAY)  # track_series off
    replay.feed(history(seed=2, users=10), until=BASE + 60 * DAY)
    as_of = replay.finish(BASE + 60 * DAY)
    write_report(tmp_path / "r.html", replay, as_of)
    tree = parse((tmp_path / "r.html").read_text(encoding="utf-8"))
    assert tree.svgs == 1  # only the reliability diagram
    assert "No daily series was recorded" in "".join(tree.text)


def test_auc_averages_ties_like_a_pairwise_count() -> None:
    rng = random.Random(3)
    scores = [float(rng.randint(0, 5)) for _ in range(300)]  # heavy ties
    labels = [rng.random() < 0.2 + 0.1 * s for s in scores]
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0
                   for p in pos for n in neg) / (len(pos) * len(neg))
    assert auc(scores, labels) == pytest.approx(expected, abs=1e-12)
    assert auc([0.1, 0.2, 0.3], [False, False, True]) == 1.0
    assert auc([0.5, 0.5], [True, False]) == 0.5
    assert auc([0.1, 0.9], [True, True]) is None


def test_reliability_bins_tenths() -> None:
    scores = [0.05, 0.07, 0.55, 1.0, 0.95, 0.999]
    labels = [False, True, True, True, False, True]
    bins = reliability(scores, labels)
    assert [(b.lo, b.users) for b in bins] == [(0.0, 2), (0.5, 1), (0.9, 3)]
    assert bins[0].mean_predicted == pytest.approx(0.06)
    assert bins[0].observed_rate == pytest.approx(0.5)
    assert bins[2].observed_rate == pytest.approx(2 / 3)


def test_axes_have_round_ticks_covering_the_data() -> None:
    y = value_axis(0, 437, "users")
    assert y.lo == 0 and y.hi >= 437
    assert [label for _, label in y.ticks] == ["0", "100", "200", "300", "400", "500"]
    x = day_axis(BASE, BASE + 100 * DAY)
    assert 2 <= len(x.ticks) <= 8
    assert x.ticks[0] == (BASE, "2026-01-01")


def test_churn_section_shows_each_refits_live_quality_and_the_uplift(tmp_path: Path) -> None:
    events, _ = lapse_stream(5)
    replay = Replay(Settings().with_overrides(partitions=2), received_at=BASE + 1000 * DAY)
    replay.feed(events, until=BASE + END_DAY * DAY)
    as_of = replay.finish(BASE + END_DAY * DAY)
    path = tmp_path / "report.html"
    write_report(path, replay, as_of)
    tree = parse(path.read_text(encoding="utf-8"))
    checked = [(p, m) for p, m in replay.summary.churn_models if m.quality is not None]
    assert len(checked) >= 6 and "logit" in {m.kind for _, m in checked}
    shown = [r for r in tree.rows if len(r) == 11 and r[2] in ("logit", "btyd")]
    assert len(shown) == len(checked)
    for row, (p, m) in zip(shown, checked, strict=True):
        assert m.quality is not None and m.quality.auc is not None
        assert (row[1], row[8]) == (str(p), f"{m.quality.auc:.3f}")
    u = replay.summary.uplift
    assert u is not None and u.treated.settled > 0 and u.control.settled > 0
    assert _row(tree, "treated")[1:3] == [f"{u.treated.settled:,}", f"{u.treated.returned:,}"]
    assert _row(tree, "control")[1:3] == [f"{u.control.settled:,}", f"{u.control.returned:,}"]


def test_the_users_listed_are_those_with_most_value_at_risk(
        backtest: tuple[Replay, float, str]) -> None:
    """Ranked by net spend times churn risk (an alert's priority_score), not by churn risk
    alone, at whose top users who never bought all sit alike."""
    replay, as_of, html = backtest
    rows = parse(html).rows
    start = next(i for i, r in enumerate(rows) if r[:3] == ["user", "value at risk",
                                                              "churn_risk"])
    shown = [r[0] for r in rows[start + 1:start + 21]]
    snaps = list(replay.snapshots(as_of))
    stake = {u["user_id"]: u["monetary"] * u["churn_risk"] for u in snaps}
    assert len(shown) == 20 and len(set(shown)) == 20
    assert min(stake[u] for u in shown) >= max(v for k, v in stake.items() if k not in shown)
    assert [stake[u] for u in shown] == sorted((stake[u] for u in shown), reverse=True)
    # churn risk alone would have listed others: the ones who never bought
    riskiest = sorted(snaps, key=lambda u: -u["churn_risk"])[:20]
    assert {u["user_id"] for u in riskiest} != set(shown)


def test_an_x_label_at_the_right_edge_stays_inside_the_chart() -> None:
    x = day_axis(BASE, BASE + 28 * DAY)  # the last tick sits on the right edge
    svg = line_chart("t", x, value_axis(0, 1, "AUC"), [], width=480)
    last = x.ticks[-1][1]
    tag = svg[:svg.index(f">{last}</text>")]
    tag = tag[tag.rindex("<text"):]
    assert 'text-anchor="end"' in tag
    first = x.ticks[0][1]
    tag = svg[:svg.index(f">{first}</text>")]
    assert 'text-anchor="middle"' in tag[tag.rindex("<text"):]


def test_the_report_and_summary_say_what_the_backtest_ran_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Partitions, inputs and version change or explain a result, and are not settings
    of the shown sections: both outputs carry them, so a backtest can be run again."""
    path = tmp_path / "h.jsonl"
    path.write_bytes(b"".join(orjson.dumps(to_object(e)) + b"\n" for e in history()[:400]))
    monkeypatch.setenv("JOURNEY_PARTITIONS", "3")
    report, summary = tmp_path / "r.html", tmp_path / "s.json"
    assert main(["replay", str(path), "--until", "2026-02-01T00:00:00Z", "--no-progress",
                 "--report", str(report), "--summary-json", str(summary)]) == 0
    run = orjson.loads(summary.read_bytes())["run"]
    assert run["partitions"] == 3 and run["journey"] == __version__
    assert run["inputs"] == [{"file": str(path), "bytes": path.stat().st_size}]
    assert run["until"] == "2026-02-01T00:00:00Z" and run["cut_over"] is None
    tree = parse(report.read_text(encoding="utf-8"))
    assert _row(tree, "partitions") == ["partitions", "3"]
    assert _row(tree, "input")[1] == f"{path} ({path.stat().st_size:,} bytes)"
    assert _row(tree, "churn_churned_threshold")[1].startswith("0 (set at each fit")
