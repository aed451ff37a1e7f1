"""``journey synth``: write a synthetic storefront history with its ground truth."""

from __future__ import annotations

import argparse
import sys
import time

import orjson

from streams.settings import Settings
from streams.synth import SynthConfig, generate_truth, iter_events, write_jsonl


def run_synth(args: argparse.Namespace, settings: Settings) -> int:
    start = args.start if args.start is not None else time.time() - args.days * 86400.0
    cfg = SynthConfig(users=args.users, days=args.days, start=start, seed=args.seed,
                      segment_share=args.segment_share)
    try:
        cfg.validate()
    except ValueError as exc:
        print(f"journey synth: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)  # as replay's outputs do
    n = write_jsonl(iter_events(cfg), args.out)
    truth_path = args.out.with_name(args.out.name + ".truth.jsonl")
    with open(truth_path, "wb") as fh:
        for t in generate_truth(cfg).values():
            fh.write(orjson.dumps(t) + b"\n")
    print(f"wrote {n:,} events for {cfg.users:,} users to {args.out} "
          f"(ground truth: {truth_path})", file=sys.stderr)
    return 0
