"""The uplift of recalls, measured against the control group.

A recall trigger's outcome is known once the user comes back (reactivates) or once
``uplift_window_days`` pass without that: it is then *settled*, and *returned* if the
user came back within the window. Each group's return rate is returned / settled; the
uplift is the treated rate minus the control rate, with a 95% confidence interval
(normal approximation of the difference of two proportions).

The counts come from the users' states (``recalls``, ``recall_returns``, and whether the
latest recall's window is still open), kept up to date like the census and rebuilt from
the table on restore: exact in a replay, a live worker and a restarted one alike.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from streams.core.state import CHURNED, UserState

Z95 = 1.959963984540054
UpliftKey = tuple[bool, int, int, float | None]  # control, recalls, returned, window end


def uplift_key(s: UserState, window: float) -> UpliftKey | None:
    """A user's recalls (None: never recalled) and, while they are still churned since
    their latest recall, when its window closes."""
    if not s.recalls:
        return None
    open_until = None
    if s.stage == CHURNED and s.last_recall_at is not None \
            and s.last_recall_at >= s.stage_since:
        open_until = s.last_recall_at + window
    return bool(s.last_recall_control), s.recalls, s.recall_returns, open_until


@dataclass(frozen=True, slots=True)
class Outcomes:
    settled: int = 0
    returned: int = 0

    @property
    def rate(self) -> float | None:
        return self.returned / self.settled if self.settled else None

    def __add__(self, other: Outcomes) -> Outcomes:
        return Outcomes(self.settled + other.settled, self.returned + other.returned)


@dataclass(frozen=True, slots=True)
class Uplift:
    treated: Outcomes
    control: Outcomes
    estimate: float | None  # treated rate - control rate
    low: float | None  # 95% interval
    high: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"treated_settled": self.treated.settled, "treated_returned": self.treated.returned,
                "control_settled": self.control.settled, "control_returned": self.control.returned,
                "treated_rate": self.treated.rate, "control_rate": self.control.rate,
                "uplift": self.estimate, "uplift_low": self.low, "uplift_high": self.high}


def uplift(treated: Outcomes, control: Outcomes) -> Uplift:
    pt, pc = treated.rate, control.rate
    if pt is None or pc is None:
        return Uplift(treated, control, None, None, None)
    half = Z95 * math.sqrt(pt * (1 - pt) / treated.settled + pc * (1 - pc) / control.settled)
    return Uplift(treated, control, pt - pc, pt - pc - half, pt - pc + half)


class UpliftTally:
    """Recall outcomes over one partition's users, by group (True: control)."""

    def __init__(self) -> None:
        self.recalls: Counter[bool] = Counter()
        self.returned: Counter[bool] = Counter()
        self.open: Counter[tuple[bool, float]] = Counter()

    def clear(self) -> None:
        self.recalls.clear()
        self.returned.clear()
        self.open.clear()

    def count(self, key: UpliftKey | None, sign: int) -> None:
        if key is None:
            return
        control, recalls, returned, open_until = key
        self.recalls[control] += sign * recalls
        self.returned[control] += sign * returned
        if open_until is not None:
            self.open[(control, open_until)] += sign
            if not self.open[(control, open_until)]:
                del self.open[(control, open_until)]

    def outcomes(self, now: float) -> dict[bool, Outcomes]:
        """Settled and returned recalls by group, as of ``now``."""
        pending = Counter({False: 0, True: 0})
        for (control, until), n in self.open.items():
            if until > now:
                pending[control] += n
        return {g: Outcomes(self.recalls[g] - pending[g], self.returned[g])
                for g in (False, True)}
