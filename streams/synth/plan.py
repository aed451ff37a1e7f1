"""Who the synthetic users are, when they come, and which of their sessions buy.

Users follow archetypes (steady buyer, churner, returner, ...). A user's plan comes from
a per-user RNG, so the ground truth of what each user did needs no events; opinion
leaders are planned first, since their invitations decide when the invited arrive.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from streams.core import event as ev

DAY = 86400
# A user has at most one session per local day and a session lasts at most this long, so a
# user's sessions never overlap and session starts bound how far events interleave.
MAX_SESSION_SECONDS = 1800

DEFAULT_MIX: dict[str, float] = {
    "regular": 0.15, "loyal": 0.15, "one_time": 0.2, "never_buyer": 0.2, "churner": 0.1,
    "sharer": 0.06, "opinion_leader": 0.04, "returner": 0.1}
ARCHETYPES = tuple(DEFAULT_MIX)
_REFEREE_ARCHETYPES = ("regular", "loyal", "one_time")  # referred users go on to buy
CHANNELS = ("app_push", "email", "sms", "phone")
CURRENCY = "EUR"

_OFFSETS, _OFFSET_WEIGHTS = (60, 120, 0, -300, 330, -480, 540), (45, 15, 15, 10, 5, 5, 5)
_HOURS = ((12, 13), (19, 20, 21, 22), (7, 8), (15, 16, 17))  # lunch, evening, commute, tea
_HOUR_WEIGHTS = (30, 45, 15, 10)
_RATINGS, _RATING_WEIGHTS = (5, 4, 3, 2, 1), (40, 33, 15, 7, 5)
_COUPONS = ("WELCOME10", "SPRING15", "FRIEND5")


@dataclass(slots=True)
class SynthConfig:
    users: int
    days: float  # >= 8 base cycles, or churners and returners lack room to be seen
    start: float  # epoch seconds; the window is [start, start + days)
    seed: int
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    base_cycle_days: float = 14.0
    segment_share: float = 0.0  # events emitted as Segment `track` calls
    duplicate_share: float = 0.0  # events re-sent with the same id (at-least-once producer)
    bad_share: float = 0.0  # malformed lines inserted, per good event

    def validate(self) -> None:
        noise = (self.segment_share, self.duplicate_share, self.bad_share)
        problems = [text for bad, text in (
            (self.users < 1, "users must be at least 1"),
            (self.days < 14, "days must be at least 14"),
            (self.base_cycle_days <= 0, "base_cycle_days must be positive"),
            (bool(set(self.mix) - set(ARCHETYPES)), f"unknown archetypes in {sorted(self.mix)}"),
            (any(v < 0 for v in self.mix.values()) or sum(self.mix.values()) <= 0,
             "mix shares must be non-negative and not all zero"),
            (any(not 0.0 <= x <= 1.0 for x in noise), "noise shares must be in [0, 1]"),
        ) if bad]
        if problems:
            raise ValueError("invalid synth config: " + "; ".join(problems))


@dataclass(slots=True)
class Truth:
    """What really happened to one user. `stopped_at` is set for one_time, never_buyer and
    churner users (nothing follows it) and for returners, who come back at `returns_at`."""

    user_id: str
    archetype: str
    first_seen_at: float
    stopped_at: float | None  # time of the last event before the user stops (or pauses)
    returns_at: float | None  # first event after the long pause
    purchases: int
    referred_by: str | None
    utc_offset_min: int = 0
    local_hour: int = 0  # the user's usual local hour of visits
    cycle_days: float | None = None  # the buying rhythm the user was drawn with, if any


@dataclass(slots=True)
class Session:
    start: int
    buys: bool = False
    order_id: str | None = None
    items: tuple[int, ...] = ()  # catalogue indices bought
    amount: float = 0.0
    coupon: str | None = None
    refund: tuple[str, float] | None = None  # (order_id, amount) of an earlier order
    review: tuple[str, int] | None = None  # (order_id, rating) of an earlier order
    referral: str | None = None  # user invited in this session
    shares: int = 0
    consent: tuple[str, str] | None = None  # (unsubscribe|resubscribe, channel)


@dataclass(slots=True)
class Plan:
    index: int
    user_id: str
    archetype: str
    offset_min: int
    suffix: str  # the offset as RFC 3339 writes it, "+01:00"
    hour: int
    cycle: float | None
    consent: tuple[str, ...]
    referred_by: str | None
    sessions: list[Session] = field(default_factory=list)
    stop_index: int | None = None  # last session before the user stops (or pauses)


@dataclass(slots=True)
class Population:
    cfg: SynthConfig
    prices: list[float]
    plans: list[Plan]


# --- planning: who comes when, and which sessions buy -------------------------------------

def _counts(mix: dict[str, float], users: int) -> dict[str, int]:
    """Exact per-archetype counts by largest remainder, so proportions hold at any size."""
    raw = {a: mix.get(a, 0.0) / sum(mix.values()) * users for a in ARCHETYPES}
    counts = {a: int(v) for a, v in raw.items()}
    by_remainder = sorted(ARCHETYPES, key=lambda a: counts[a] - raw[a])
    for a in by_remainder[: users - sum(counts.values())]:
        counts[a] += 1
    return counts


def _days(rng: random.Random, arch: str, n: int, base: float,
          first: float | None) -> tuple[dict[int, bool], float | None, int | None, list[int]]:
    """Session days (counted from the window's first local day) with a buy flag, the user's
    cycle, the last day before they stop or pause, and the days they invite someone."""
    lo, hi = 1, n - 2  # whole local days strictly inside the window
    days: dict[int, bool] = {}

    def put(x: float, buys: bool) -> None:
        if lo <= int(x) <= hi:
            days[int(x)] = days.get(int(x), False) or buys

    def browse(a: float, b: float, per_day: float) -> None:
        x = a + rng.expovariate(per_day)
        while x < b:
            put(x, False)
            x += rng.expovariate(per_day)

    def buy_every(a: float, b: float, cycle: float) -> None:
        while a <= b:  # a steady rhythm with little jitter: rigid demand
            put(a, True)
            a += cycle * max(0.6, 1.0 + rng.gauss(0.0, 0.06))

    def begin(share: float) -> float:
        s0 = min(float(hi), first if first is not None else rng.uniform(lo, max(lo, share * n)))
        put(s0, False)
        return s0

    c = base * min(1.6, max(0.6, rng.lognormvariate(0.0, 0.2)))
    cycle: float | None = None if arch in ("one_time", "never_buyer", "sharer") else c
    stop: int | None = None
    invites: list[int] = []  # no list is ever long: `in` on a list is fine
    if arch in ("regular", "churner", "returner"):
        s0 = begin(0.15 if arch == "regular" else 0.08)
        end = float(hi)
        if arch == "churner":  # long enough to be an established buyer first
            end = min(0.6 * n, max(s0 + 2.5 * c, s0 + rng.uniform(0.3, 0.45) * n))
        elif arch == "returner":
            end = s0 + max(2.2 * c, rng.uniform(0.15, 0.25) * n)
        buy_every(s0 + rng.uniform(0.0, min(3.0, c / 2)), end, c)
        browse(s0, end, 1.5 / c)
        stop = None if arch == "regular" else max(d for d in days if d <= end)
        if arch == "returner" and stop is not None:
            back = min(0.85 * n, stop + max(4.0 * c, rng.uniform(0.25, 0.35) * n))
            if int(back) > stop:
                put(back, rng.random() < 0.5)
                buy_every(back + rng.uniform(0.5, 3.0), hi, c)
                browse(back, hi, 1.5 / c)
    elif arch in ("loyal", "opinion_leader"):
        cycle = mean_gap = base * rng.uniform(0.45, 0.85)
        s0 = begin(0.2 if arch == "loyal" else 0.1)
        x = s0 + rng.uniform(0.0, 2.0)
        while x <= hi:  # gamma gaps: frequent, but far from a fixed rhythm
            put(x, True)
            x += 0.5 + rng.gammavariate(1.3, mean_gap / 1.3)
        browse(s0, hi, 1.0 / mean_gap)
        if arch == "opinion_leader":  # invite early, so the invited have time to buy
            wanted = rng.randint(2, 4)
            for _ in range(20):  # distinct days; a short window may fit fewer
                d = int(rng.uniform(s0, max(s0 + 1.0, 0.45 * n)))
                if len(invites) < wanted and lo <= d <= hi and d not in invites:
                    invites.append(d)
                    put(d, False)
    elif arch == "one_time":
        s0 = begin(0.7)
        bought = min(float(hi), s0 if rng.random() < 0.35 else s0 + rng.uniform(0.5, 6.0))
        browse(s0, bought, 0.4)
        put(bought, True)
        stop = int(bought)
    elif arch == "never_buyer":
        s0 = begin(0.8)
        for _ in range(rng.randint(0, 3)):
            put(s0 + rng.uniform(0.5, 14.0), False)
        stop = max(days)
    else:  # sharer: around every four days, to the end
        browse(begin(0.3), hi, 0.25)
    return days, cycle, stop, invites


def _plan_user(cfg: SynthConfig, prices: list[float], index: int, arch: str,
               earliest: float | None, referred_by: str | None) -> tuple[Plan, list[int]]:
    """The user's sessions and what happens in each; also the sessions that invite someone."""
    rng = random.Random(f"{cfg.seed}:user:{index}")
    offset = rng.choices(_OFFSETS, _OFFSET_WEIGHTS)[0]
    hour = rng.choice(rng.choices(_HOURS, _HOUR_WEIGHTS)[0])
    consent = ("app_push", "email") if rng.random() < 0.6 else (
        ("email",) if rng.random() < 0.5 else ("app_push", "email", "sms"))
    uid = f"u{index:06d}"
    first_day = int(cfg.start + offset * 60) // DAY  # the window's first local day
    first: float | None = None
    if earliest is not None:  # the invited arrive on a local day after the invitation
        first = (int(earliest) + offset * 60) // DAY - first_day + 1 + int(rng.expovariate(1.2))
    days, cycle, stop_day, invites = _days(rng, arch, int(cfg.days), cfg.base_cycle_days, first)
    sign, (oh, om) = "+" if offset >= 0 else "-", divmod(abs(offset), 60)
    plan = Plan(index, uid, arch, offset, f"{sign}{oh:02d}:{om:02d}", hour, cycle, consent,
                 referred_by)
    subscribed, dropped = set(consent), set[str]()
    unrefunded: list[tuple[str, float]] = []
    unreviewed: list[str] = []
    inviting: list[int] = []  # indices of sessions that invite someone
    share_p = {"sharer": 0.7, "opinion_leader": 0.35}.get(arch, 0.03)
    for d in sorted(days):
        if rng.random() < 0.1:  # now and then an odd hour
            local = rng.randint(8, 23) * 3600 + rng.randint(0, 59) * 60
        else:
            local = hour * 3600 + int(max(-2700.0, min(2700.0, rng.gauss(0.0, 1500.0))))
        s = Session(start=(first_day + d) * DAY - offset * 60 + local)
        if unrefunded and rng.random() < 0.05:
            s.refund = unrefunded.pop()
        if unreviewed and rng.random() < 0.12:
            s.review = (unreviewed.pop(), rng.choices(_RATINGS, _RATING_WEIGHTS)[0])
        if days[d]:
            s.buys, s.order_id = True, f"{uid}-o{d}"  # one session a day: unique
            s.items = tuple(int(len(prices) * rng.random() ** 2)
                            for _ in range(1 + int(rng.random() ** 2 * 3)))
            total = sum(prices[i] for i in s.items)
            if rng.random() < 0.12:
                s.coupon = rng.choice(_COUPONS)
                total *= 0.9
            s.amount = round(total, 2)
            unrefunded.append((s.order_id, s.amount))
            unreviewed.append(s.order_id)
        if (arch == "sharer" and len(plan.sessions) < 2) or rng.random() < share_p:
            s.shares = 1 + (rng.random() < 0.35)
        for kind, source, target, p in ((ev.UNSUBSCRIBE, subscribed, dropped, 0.02),
                                        (ev.RESUBSCRIBE, dropped, subscribed, 0.1)):
            if source and rng.random() < p:  # some opt out, and some of those change their mind
                channel = rng.choice(sorted(source))
                source.discard(channel)
                target.add(channel)
                s.consent = (kind, channel)
                break
        if d in invites:
            inviting.append(len(plan.sessions))
        if d == stop_day:
            plan.stop_index = len(plan.sessions)
        plan.sessions.append(s)
    return plan, inviting


def populate(cfg: SynthConfig) -> Population:
    cfg.validate()
    rng = random.Random(f"{cfg.seed}:population")
    prices = [round(min(400.0, rng.lognormvariate(3.2, 0.7)), 2) for _ in range(400)]
    counts = _counts(cfg.mix, cfg.users)
    archetypes = [a for a in ARCHETYPES for _ in range(counts[a])]
    rng.shuffle(archetypes)
    pool = [i for i, a in enumerate(archetypes) if a in _REFEREE_ARCHETYPES]
    rng.shuffle(pool)
    plans: dict[int, Plan] = {}
    invited: dict[int, tuple[float, str]] = {}  # referee -> (earliest arrival, referrer)
    # Opinion leaders first: their invitations decide when the invited arrive.
    for i in (i for i, a in enumerate(archetypes) if a == "opinion_leader"):
        plans[i], inviting = _plan_user(cfg, prices, i, "opinion_leader", None, None)
        for session in (plans[i].sessions[k] for k in inviting[: len(pool)]):
            referee = pool.pop()
            session.referral = f"u{referee:06d}"
            invited[referee] = (session.start + MAX_SESSION_SECONDS, plans[i].user_id)
    for i, arch in enumerate(archetypes):
        if i not in plans:
            earliest, referrer = invited.get(i, (None, None))
            plans[i] = _plan_user(cfg, prices, i, arch, earliest, referrer)[0]
    return Population(cfg, prices, [plans[i] for i in range(cfg.users)])
