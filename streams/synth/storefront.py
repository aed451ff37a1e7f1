"""Synthetic storefront traffic with known ground truth.

Users follow archetypes (steady buyer, churner, returner, ...) whose real lifecycle is kept
in a `Truth`, so tests, the demo and benchmarks can score journey against what happened. A
user's plan comes from a per-user RNG (``plan``) and each session's clicks from a
per-session RNG (here), so truth needs no events, and events stream in time order with
only the plans in memory; ``noise`` adds what real producers get wrong. No clock is read;
only `write_jsonl` touches files.
"""

from __future__ import annotations

import gzip
import heapq
import itertools
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from streams.core import event as ev
from streams.synth.noise import with_noise
from streams.synth.plan import CURRENCY, DAY, Plan, Population, SynthConfig, Truth, populate

_QUERIES = ("rain jacket", "running shoes", "wool socks", "gift for dad", "coffee beans",
            "phone case", "desk lamp", "yoga mat", "backpack", "sunglasses", "headphones")
_PAGES = ("/", "/sale", "/new", "/category/home", "/category/outdoor", "/help/shipping")


# --- sessions: the clicks of one visit ------------------------------------------------------

@lru_cache(maxsize=4096)
def _day_prefix(day: int) -> str:
    return datetime.fromtimestamp(day * DAY, UTC).strftime("%Y-%m-%dT")


@lru_cache(maxsize=1)
def _clock() -> list[str]:  # every "HH:MM:SS" of a day, built once: formatting is hot
    return [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]


def _session_events(pop: Population, plan: Plan, k: int) -> list[tuple[int, dict[str, Any]]]:
    """The events of session ``k`` of ``plan`` with their times, from the session's own RNG."""
    s, prices, clock = plan.sessions[k], pop.prices, _clock()
    rng = random.Random(f"{pop.cfg.seed}:session:{plan.index}:{k}")
    uid, shift, suffix = plan.user_id, plan.offset_min * 60, plan.suffix
    out: list[tuple[int, dict[str, Any]]] = []
    t = s.start

    def emit(kind: str, props: dict[str, Any]) -> None:
        nonlocal t
        day, sec = divmod(t + shift, DAY)
        out.append((t, {"event_id": f"{uid}.{k}.{len(out)}", "user_id": uid, "type": kind,
                        "occurred_at": _day_prefix(day) + clock[sec] + suffix,
                        "source": "synth", "properties": props}))
        t += 3 + int(rng.random() * 57)

    def item(p: int) -> dict[str, Any]:
        return {"product_id": f"p{p:04d}", "price": prices[p], "quantity": 1}

    def product() -> int:  # a few products are the most popular
        return int(len(prices) * rng.random() ** 2)

    emit(ev.SESSION_START, {})
    if k == 0:
        referred = {"referred_by": plan.referred_by} if plan.referred_by else {}
        emit(ev.SIGNUP, {"consent": list(plan.consent), **referred})
    if s.consent:
        emit(s.consent[0], {"channel": s.consent[1]})
    if s.refund:
        emit(ev.REFUND, {"amount": s.refund[1], "currency": CURRENCY, "order_id": s.refund[0]})
    if s.review:
        emit(ev.REVIEW, {"rating": s.review[1], "order_id": s.review[0]})
    for _ in range(1 + min(9, int(rng.expovariate(0.33)))):
        x = rng.random()
        if x < 0.35:
            emit(ev.PAGE_VIEW, {"page": _PAGES[int(rng.random() * len(_PAGES))]})
        elif x < 0.8:
            emit(ev.PRODUCT_VIEW, item(product()))
        else:
            emit(ev.SEARCH, {"query": _QUERIES[int(rng.random() * len(_QUERIES))]})
    if rng.random() < 0.05:
        emit(ev.WISHLIST_ADD, {"product_id": f"p{product():04d}"})
    for _ in range(s.shares):
        emit(ev.SHARE, {})
    if s.referral:
        emit(ev.REFERRAL, {"referred_user_id": s.referral})
    if s.buys:
        for p in s.items:
            emit(ev.ADD_TO_CART, item(p))
        if rng.random() < 0.1:  # second thoughts about one more thing
            p = product()
            emit(ev.ADD_TO_CART, item(p))
            emit(ev.REMOVE_FROM_CART, item(p))
        emit(ev.CHECKOUT_STARTED, {"order_id": s.order_id})
        if s.coupon:
            emit(ev.COUPON_REDEEMED, {"coupon": s.coupon, "order_id": s.order_id})
        emit(ev.PURCHASE, {"amount": s.amount, "currency": CURRENCY, "order_id": s.order_id})
    elif rng.random() < (0.35 if plan.archetype == "never_buyer" else 0.15):  # abandoned cart
        emit(ev.ADD_TO_CART, item(product()))
        if rng.random() < 0.3:
            emit(ev.CHECKOUT_STARTED, {})
    return out


def _truth(pop: Population, plan: Plan) -> Truth:
    sessions, k = plan.sessions, plan.stop_index
    stopped = None if k is None else float(_session_events(pop, plan, k)[-1][0])
    returns = float(sessions[k + 1].start) if k is not None and k + 1 < len(sessions) else None
    return Truth(plan.user_id, plan.archetype, float(sessions[0].start), stopped, returns,
                 sum(s.buys for s in sessions), plan.referred_by, plan.offset_min, plan.hour,
                 plan.cycle)


# --- output: time order ----------------------------------------------------------------------

def _ordered(pop: Population) -> Iterator[dict[str, Any]]:
    """All events by (time, user, position). Sessions are opened in order of start, and no
    event lies more than MAX_SESSION_SECONDS after its session's start: a small heap will do."""
    starts = sorted((s.start, p.index, k) for p in pop.plans for k, s in enumerate(p.sessions))
    heap: list[tuple[int, int, int, dict[str, Any]]] = []
    for start, index, k in starts:
        while heap and heap[0][0] < start:
            yield heapq.heappop(heap)[3]
        for seq, (t, event) in enumerate(_session_events(pop, pop.plans[index], k)):
            heapq.heappush(heap, (t, index, k * 1000 + seq, event))
    while heap:
        yield heapq.heappop(heap)[3]


# --- public API ----------------------------------------------------------------------------

def iter_events(cfg: SynthConfig) -> Iterator[dict[str, Any] | str]:
    """Events in time order, streamed; strings are the malformed lines."""
    return with_noise(cfg, _ordered(populate(cfg)))


def generate_truth(cfg: SynthConfig) -> dict[str, Truth]:
    """Ground truth per user id from the seed alone (only each stop session is replayed)."""
    pop = populate(cfg)
    return {p.user_id: _truth(pop, p) for p in pop.plans}


def generate(cfg: SynthConfig) -> tuple[list[dict[str, Any] | str], dict[str, Truth]]:
    """All events in time order, and the ground truth per user id."""
    pop = populate(cfg)
    return list(with_noise(cfg, _ordered(pop))), {p.user_id: _truth(pop, p) for p in pop.plans}


def write_jsonl(events: Iterable[dict[str, Any] | str], path: str | Path) -> int:
    """One event per line, gzip when the name ends in .gz; returns the number of lines.
    The gzip header carries no name or time, so equal events give equal bytes."""
    count, chunk = 0, []
    with open(path, "wb") as raw:
        sink: Any = (gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
                     if str(path).endswith(".gz") else raw)
        for event in itertools.chain(events, [None]):  # None: the final flush
            if event is not None:
                chunk.append(event.encode() if isinstance(event, str) else orjson.dumps(event))
            if chunk and (event is None or len(chunk) >= 4096):
                sink.write(b"\n".join(chunk) + b"\n")
                count += len(chunk)
                chunk.clear()
        sink.close()  # closing a GzipFile leaves `raw` open; closing `raw` twice is harmless
    return count
