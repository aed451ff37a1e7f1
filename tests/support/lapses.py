"""A purchase stream whose churn truth is known: each customer buys at their own rate
until an unseen moment when they leave for good. The learned churn model's tests and the
report's churn section both run on it."""

from __future__ import annotations

import random

from streams.core.event import Event
from streams.testing import make_event

USERS = 1200
END_DAY = 400.0


def lapse_stream(seed: int) -> tuple[list[Event], dict[str, float]]:
    """Purchase events, time-ordered, and each user's (hidden) day of leaving."""
    rng = random.Random(seed)
    events: list[tuple[float, Event]] = []
    left: dict[str, float] = {}
    for i in range(USERS):
        user = f"c{i}"
        start = rng.uniform(0, 90)
        rate = rng.gammavariate(2.0, 1.0 / 40.0)  # purchases a day, mean one in 20 days
        left[user] = start + rng.expovariate(1.0 / 150.0)
        day, n = start, 0
        while day < min(left[user], END_DAY):
            events.append((day, make_event(user, "purchase", day, amount=round(
                rng.uniform(8, 60), 2), order_id=f"{user}-{n}")))
            n += 1
            day += rng.expovariate(rate)
    events.sort(key=lambda pair: (pair[0], pair[1].event_id))
    return [e for _, e in events], left
