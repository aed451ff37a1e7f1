"""``journey bootstrap FILES… [--until T]``: go live with history (docs/going-live.md).

Replays the history through the same core as ``journey replay``, then writes the users,
each partition's checkpoint and model into the workers' table changelog
(:mod:`agents.kafka.bootstrap`), so workers restore them as if they had processed the
history themselves. The history's alerts are historical: written to ``--alerts-out``
and the report, never published.

Exit status:
  0  the table is loaded: start the workers;
  1  the broker failed mid-way: run the same command again (workers refuse a
     half-loaded table meanwhile);
  2  unusable input or configuration;
  3  refused: workers already processed input since the last bootstrap (``--force``
     replaces their table all the same), or wrote to the table while this ran.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import math
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import fields
from pathlib import Path
from typing import Any

import orjson

from agents.cli.replay import (
    Progress,
    feed_files,
    format_summary,
    missing,
    run_facts,
    writer,
)
from streams.core.timefmt import rfc3339
from streams.replay.engine import Replay
from streams.replay.sources import InputError
from streams.settings import Settings

PROG = "journey bootstrap"
# the settings a replayed state depends on (and the partitioning), for the digest
DIGEST_SECTIONS = ("lifecycle", "population", "time", "alerts")


def _err(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr)


def digest_of(paths: list[Path], settings: Settings, args: argparse.Namespace) -> str:
    """What makes two runs the same bootstrap: the input bytes, the settings the state
    depends on and the options. A rerun with the same digest rewrites the same records."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        h.update(b"\x00")
    chosen = {f.name: getattr(settings, f.name) for f in fields(settings)
              if f.metadata.get("section") in DIGEST_SECTIONS or f.name == "partitions"}
    chosen.update(until=args.until, input_from=args.input_from, live_from=args.live_from)
    h.update(orjson.dumps(chosen, option=orjson.OPT_SORT_KEYS))
    return h.hexdigest()


def run_bootstrap(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka.errors import KafkaError

    from agents.kafka.bootstrap import BootstrapError

    paths: list[Path] = args.inputs
    if not settings.broker:
        _err("no Kafka broker configured: set JOURNEY_BROKER=host:port (or `broker` in "
             "the config file)")
        return 2
    if missing(PROG, paths):
        return 2
    if args.live_from is not None and args.until is not None and args.live_from < args.until:
        _err("--live-from must not be before --until: alerts of the history are never "
             "published")
        return 2
    try:
        return _bootstrap(args, settings, digest_of(paths, settings, args))
    except BootstrapError as exc:
        _err(str(exc))
        return exc.code
    except InputError as exc:
        _err(str(exc))
        return 2
    except (KafkaError, OSError, TimeoutError) as exc:  # nothing half-loaded for a worker
        _err(f"failed: {exc!r}. Workers refuse a table whose bootstrap did not complete; "
             "run the same command again (it is safe)")
        return 1


def _bootstrap(args: argparse.Namespace, settings: Settings, digest: str) -> int:
    from agents.kafka import bootstrap as kb

    started = time.monotonic()
    found = asyncio.run(_preflight(settings, args))
    previous = found.previous(digest)
    wall = time.time()
    with ExitStack() as stack:
        alerts = writer(stack, args.alerts_out)
        replay = Replay(settings, wall, on_alert=alerts, on_historical=alerts,
                        on_transition=writer(stack, args.transitions_out),
                        on_dead_letter=writer(stack, args.dead_letter_out),
                        track_series=args.report is not None, live_from=math.inf)
        total = sum(p.stat().st_size for p in args.inputs)
        progress = Progress(total, enabled=not args.no_progress,
                            lines=not sys.stderr.isatty())
        feed_files(replay, args.inputs, settings, progress, args.until)
        progress.close()
        until = replay.finish(args.until)
    if not replay.summary.users:
        raise kb.BootstrapError("the history holds no valid event: nothing to load", 2)
    print(format_summary(replay.summary, time.monotonic() - started), file=sys.stderr)
    live_from = _live_from(args, previous, until, wall)
    if args.report is not None:
        from streams.replay.report import write_report

        write_report(args.report, replay, until,
                     run_facts(args.inputs, settings, wall, until=args.until))
    loaded = asyncio.run(_load(settings, args, found, replay, digest, until, live_from,
                               previous))
    print(f"loaded {loaded:,} users into {found.changelog} in "
          f"{time.monotonic() - started:.1f}s; history ends {rfc3339(until)}, alerts from "
          f"{rfc3339(live_from)} on are live. Start the workers.", file=sys.stderr)
    return 0


def _live_from(args: argparse.Namespace, previous: dict[str, Any] | None, until: float,
               wall: float) -> float:
    from agents.kafka.bootstrap import BootstrapError

    if previous is not None:  # the same bootstrap again: the same records
        return float(previous["live_from"])
    live_from = args.live_from if args.live_from is not None else max(until, wall)
    if live_from < until:
        raise BootstrapError(f"--live-from {rfc3339(live_from)} is before the history's end "
                             f"{rfc3339(until)}: alerts of the history are never published",
                             2)
    return float(live_from)


async def _preflight(settings: Settings, args: argparse.Namespace) -> Any:
    """What the app's topics hold; refuses (exit 3) if workers run or went live."""
    from agents.kafka import bootstrap as kb

    await _warn_if_members(settings)
    found = await kb.inspect(settings, settings.broker)
    live = found.went_live()
    if live and not args.force:
        raise kb.BootstrapError(f"{live}. A bootstrap would replace their state; run it "
                                "only before going live, or pass --force to replace it", 3)
    if live:
        _err(f"warning: {live}; replacing their table (--force)")
    return found


async def _warn_if_members(settings: Settings) -> None:
    """Running workers would carry on from a table bootstrap rewrites under them. The
    group's member list is only a hint (the embedded broker keeps members that left);
    the changelog checks in ``_load`` are what refuse."""
    from agents.kafka.bootstrap import group_members

    members = await group_members(settings, settings.broker)
    if members:
        _err(f"warning: consumer group {settings.app_id} lists {members} member(s): make "
             "sure no worker of this app runs until bootstrap has finished")


async def _load(settings: Settings, args: argparse.Namespace, found: Any, replay: Replay,
                digest: str, until: float, live_from: float,
                previous: dict[str, Any] | None) -> int:
    """Write the replayed state (see ``agents.kafka.bootstrap.write``)."""
    from agents.kafka import bootstrap as kb
    from agents.kafka import codec
    from agents.kafka.table import ctx_key, snapshot_key

    n = settings.partitions
    if await kb.changed_since(settings, settings.broker, found):
        raise kb.BootstrapError(f"{found.changelog} changed while the history was replayed "
                                "(did a worker start?): stop the workers and run again", 3)
    offsets, repartition = await _input_offsets(settings, args, found, previous)
    contexts: dict[int, dict[str, Any]] = {}
    stale: dict[int, set[bytes]] = {}
    snapshots: dict[int, dict[str, dict[str, Any]]] = {}
    replay.cut_over(until, live_from)
    for p, proc in enumerate(replay.processors):
        # a checkpoint as a worker writes one (no re-fits left to read back), plus the
        # input offsets it resumes after and the mark of a bootstrap
        ctx = dataclasses.replace(proc.context(), refits={}).to_dict()
        ctx.update(consumed=offsets[p] - 1, consumed_repartition=repartition[p] - 1,
                   bootstrap=digest)
        contexts[p] = ctx
        # the churn model's snapshots the checkpoint lists, as a worker holds them
        snapshots[p] = {snapshot_key(p, n, t, kind): rec
                        for (t, kind), rec in proc.refits.churn.records().items()}
        keep = {k.encode() for k in (*replay.stores[p], *proc.redirects, *snapshots[p])}
        keep |= {ctx_key(p, n).encode(), kb.marker_key(p, n).encode()}
        stale[p] = found.logs[p].keys - keep
    marker = {"digest": digest, "until": until, "live_from": live_from,
              "input_from": args.input_from, "input_offsets": offsets,
              "repartition_offsets": repartition, "written_at": time.time()}

    def entries(p: int) -> Iterator[tuple[bytes, bytes]]:
        """The partition's churn snapshots, users, and the merged ids that lead to them
        (identity)."""
        for table in (snapshots[p], replay.stores[p], replay.processors[p].redirects):
            yield from ((k.encode(), codec.dumps(v)) for k, v in table.items())

    plan = kb.Plan(found.changelog, n, marker, entries,
                   {p: len(proc.store) + len(proc.redirects) + len(snapshots[p])
                    for p, proc in enumerate(replay.processors)}, contexts, stale)
    mixed = await kb.write(settings, settings.broker, plan, _Shown(args.no_progress).phase)
    if mixed:
        raise kb.BootstrapError(f"{found.changelog} partitions {mixed} received records from "
                                "elsewhere while bootstrap wrote (a worker running?): stop "
                                "every worker, then run bootstrap again with --force", 3)
    return sum(plan.sizes.values()) - sum(len(s) for s in snapshots.values())


async def _input_offsets(settings: Settings, args: argparse.Namespace, found: Any,
                         previous: dict[str, Any] | None) -> tuple[list[int], list[int]]:
    """Per partition, the first input and repartition offsets workers apply after the
    history. The repartition topic only holds journey's own records from before."""
    from agents.kafka.bootstrap import BootstrapError, topic_bounds

    if previous is not None:
        return list(previous["input_offsets"]), list(previous["repartition_offsets"])
    n = settings.partitions
    begin, end = await topic_bounds(settings, settings.broker, found.topics.events, n)
    _, repartition = await topic_bounds(settings, settings.broker, found.topics.repartition, n)
    held = sum(end[p] - begin[p] for p in range(n))
    if held and args.input_from is None:
        raise BootstrapError(
            f"{found.topics.events} already holds {held:,} events. Say what they are: "
            "--input-from start applies them after the history (events the history also "
            "has are dropped by event id, and older than allowed_lateness before its end "
            "dead-lettered as too_late); --input-from end skips them, as covered by the "
            "history", 2)
    chosen = begin if args.input_from == "start" else end
    return [chosen[p] for p in range(n)], [repartition[p] for p in range(n)]


class _Shown:
    """Write progress on stderr: a line per phase, and a running count on a terminal."""

    def __init__(self, quiet: bool) -> None:
        self.live = sys.stderr.isatty() and not quiet
        self.started = time.monotonic()
        self.last = 0.0
        self.shown: set[str] = set()

    def phase(self, name: str, done: int, total: int) -> None:
        now = time.monotonic()
        if name in self.shown:
            return
        if done < total:
            if self.live and now - self.last >= 0.25:
                self.last = now
                sys.stderr.write(f"\rwriting {name}: {done:>10,} of {total:,}")
                sys.stderr.flush()
            return
        rate = done / max(now - self.started, 1e-9)
        end = "\r\x1b[K" if self.live else ""
        sys.stderr.write(f"{end}wrote {name}: {done:,} records ({rate:,.0f}/s)\n")
        self.shown.add(name)
        self.started = now
