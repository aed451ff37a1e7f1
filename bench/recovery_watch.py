"""A worker's state as ``bench/recovery.py`` sees it: the probe users' answers on
``/users``, its RSS, the wait until it is back (ready, every probe right), and from its
log how many changelog records it read."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from agents.testing.chaos import CORE_FIELDS
from agents.testing.workers import PARTITIONS, Worker

POLL = 0.2  # seconds between two looks at a recovering worker


def rss_mib(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) of a process in MiB."""
    got = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                got[name] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return got.get("VmRSS", 0.0), got.get("VmHWM", 0.0)


def answers(worker: Worker, users: list[str]) -> dict[str, tuple[int | None, dict[str, Any]]]:
    out = {}
    for uid in users:
        status, body = worker.get(f"/users/{uid}", timeout=10.0)
        try:
            doc = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            doc = {}
        out[uid] = (status, doc)
    return out


def core(doc: dict[str, Any]) -> dict[str, Any]:
    return {f: doc.get(f) for f in CORE_FIELDS}


def snapshot(worker: Worker, users: list[str]) -> dict[str, dict[str, Any]]:
    got = answers(worker, users)
    bad = [u for u, (s, _) in got.items() if s != 200]
    if bad:
        raise RuntimeError(f"{len(bad)} probe users did not answer 200, e.g. {bad[0]}: "
                           f"{got[bad[0]]}")
    return {u: core(doc) for u, (_, doc) in got.items()}


@dataclass
class Recovery:
    """One worker coming back: when it said ready, when the probes were right."""

    name: str
    ready_at: float | None = None  # /health/ready 200 with the partitions, from t0
    right_at: float | None = None  # ... and every probe right
    lies: int = 0  # probe answers 503 while /health/ready said 200
    lie_examples: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)  # probes still wrong at the end
    rss: tuple[float, float] = (0.0, 0.0)
    to_read: int | None = None  # changelog records faust set out to read
    bulk_read: int = 0  # changelog records the store read itself (agents.kafka.tablestore)
    synced_at: float | None = None  # the group's last sync before ready, from t0
    extra: str = ""


def wait_recovered(name: str, worker: Worker, t0: float, expected: dict[str, dict[str, Any]],
                   partitions: int = PARTITIONS,
                   on_ready: Callable[[], None] | None = None, *, bound: float) -> Recovery:
    """Poll until ``worker`` is ready and answers every probe as expected, for at most
    ``bound`` seconds."""
    rec = Recovery(name)
    wall0 = time.time() - (time.monotonic() - t0)
    users = sorted(expected)
    deadline = time.monotonic() + bound
    while True:
        if worker.returncode is not None:
            raise RuntimeError(f"{name}: worker exited with {worker.returncode}:\n"
                               f"{worker.log_tail(30)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: not recovered after {bound:.0f}s:\n"
                               f"{worker.log_tail(30)}")
        status, body = worker.get("/health/ready")
        report = orjson.loads(body) if status in (200, 503) and body else {}
        ready = status == 200 and len(report.get("partitions") or []) >= partitions
        if ready:
            if rec.ready_at is None:
                rec.ready_at = time.monotonic() - t0
                if on_ready is not None:
                    on_ready()
            got = answers(worker, users)
            for uid, (s, doc) in got.items():
                if s == 503:
                    rec.lies += 1
                    if len(rec.lie_examples) < 3:
                        rec.lie_examples.append(f"{uid}: {doc}")
            rec.wrong = [u for u, (s, doc) in got.items()
                         if s != 200 or core(doc) != expected[u]]
            if not rec.wrong:
                rec.right_at = time.monotonic() - t0
                rec.rss = rss_mib(worker.proc.pid)
                rec.to_read = changelog_to_read(worker.log_path)
                rec.bulk_read, synced = from_log(worker.log_path, wall0)
                rec.synced_at = None if synced is None else synced - wall0
                return rec
        time.sleep(POLL)


_BULK = re.compile(r"changelog partitions \[[^]]*\]: (\d+) records read")
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def from_log(log: Path, since: float) -> tuple[int, float | None]:
    """Changelog records the store read in bulk, and when the group last synced (epoch),
    from the worker's log lines after ``since`` (epoch)."""
    bulk, synced = 0, None
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return 0, None
    for line in lines:
        stamp = _STAMP.match(line)
        if stamp is None:
            continue
        at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if at < since:
            continue
        if "Successfully synced group" in line:
            synced = at
        m = _BULK.search(line)
        if m:
            bulk += int(m.group(1))
    return bulk, synced


_TABLE_ROW = re.compile(r"[│|]\s*(\S+)\s*[│|]\s*(\d+)\s*[│|]\s*(-?\d+)\s*[│|]")


def changelog_to_read(log: Path) -> int | None:
    """Records between where faust's last recovery started reading the changelog and the
    highwater it read to, from the two tables it logs at INFO (active partitions)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None

    def last_table(title: str) -> dict[int, int]:
        at = text.rfind(title)
        if at < 0:
            return {}
        rows: dict[int, int] = {}
        for line in text[at:].splitlines()[1:40]:
            m = _TABLE_ROW.search(line)
            if m:
                rows[int(m.group(2))] = int(m.group(3))
            elif rows and line.lstrip().startswith(("└", "+")):
                break
        return rows

    high = last_table("Highwater - Active")
    start = last_table("Reading Starts At - Active")
    if not high:
        return None
    return sum(max(0, h - start.get(p, -1)) for p, h in high.items())
