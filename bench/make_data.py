"""Write a large synthetic event file (JSONL, gzip when the name ends in .gz) for benchmarks.

The population is sized from a 500-user pilot run with the same settings, so the file has
roughly ``--events`` lines. The ground truth goes next to it as ``<out>.truth.jsonl``, one
user per line, for benchmarks that score journey's verdicts. Output is byte-identical for
the same arguments.

Speed is printed as a ratio against a baseline measured in the same run: writing the same
number of copies of one ready-made event through the same writer, i.e. what serialising
and compressing alone costs.

    .venv/bin/python bench/make_data.py --events 1000000
    .venv/bin/python bench/make_data.py --events 200000 --out /tmp/e.jsonl --bad-share 0.01
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.synth import SynthConfig, generate, generate_truth, iter_events, write_jsonl

DEFAULT_START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PILOT_USERS = 500


def sized_config(events: int, **options: object) -> SynthConfig:
    """A config whose output has roughly ``events`` lines, scaled from a pilot run."""
    pilot = SynthConfig(users=PILOT_USERS, **options)  # type: ignore[arg-type]
    lines = len(generate(pilot)[0])
    return dataclasses.replace(pilot, users=max(1, round(events * PILOT_USERS / lines)))


def _baseline(path: Path, n: int) -> float:
    """Seconds per line to write ``n`` copies of one typical event through write_jsonl."""
    event = {"event_id": "u000001.3.4", "user_id": "u000001", "type": "product_view",
             "occurred_at": "2026-03-01T12:15:00+01:00", "source": "synth",
             "properties": {"product_id": "p0042", "price": 19.9, "quantity": 1}}
    started = time.perf_counter()
    write_jsonl((dict(event) for _ in range(n)), path)
    elapsed = time.perf_counter() - started
    path.unlink()
    return elapsed / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="target number of lines")
    ap.add_argument("--days", type=float, default=180.0)
    ap.add_argument("--start", type=float, default=DEFAULT_START, help="epoch seconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--base-cycle-days", type=float, default=14.0)
    ap.add_argument("--segment-share", type=float, default=0.0)
    ap.add_argument("--duplicate-share", type=float, default=0.0)
    ap.add_argument("--bad-share", type=float, default=0.0)
    ap.add_argument("--out", type=Path, default=None,
                    help="default: bench/data/synth-<events>.jsonl.gz (git-ignored)")
    ap.add_argument("--no-truth", action="store_true", help="skip the truth file")
    args = ap.parse_args(argv)

    out = args.out or Path(__file__).resolve().parent / "data" / f"synth-{args.events}.jsonl.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = sized_config(args.events, days=args.days, start=args.start, seed=args.seed,
                       base_cycle_days=args.base_cycle_days, segment_share=args.segment_share,
                       duplicate_share=args.duplicate_share, bad_share=args.bad_share)
    print(f"users={cfg.users} days={cfg.days:g} seed={cfg.seed} -> {out}")

    wall, cpu = time.perf_counter(), time.process_time()
    lines = write_jsonl(iter_events(cfg), out)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    per_line = wall / max(1, lines)
    base = _baseline(out.with_name(out.name + ".baseline" + "".join(out.suffixes[-1:])),
                     min(lines, 200_000))
    print(f"wrote {lines} lines ({out.stat().st_size / 1e6:.1f} MB) in {wall:.1f} s wall, "
          f"{cpu:.1f} s cpu: {lines / wall:,.0f} lines/s wall, {lines / cpu:,.0f} lines/s cpu")
    print(f"generate+write costs {per_line / base:.1f}x writing ready-made events "
          f"({1 / base:,.0f} lines/s baseline, same run)")

    if not args.no_truth:
        truth_path = out.with_name(out.name + ".truth.jsonl")
        started = time.perf_counter()
        truth = generate_truth(cfg)
        with open(truth_path, "wb") as fh:
            fh.writelines(orjson.dumps(dataclasses.asdict(t)) + b"\n" for t in truth.values())
        print(f"truth for {len(truth)} users in {time.perf_counter() - started:.1f} s "
              f"-> {truth_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
