"""What an overload run (:mod:`agents.testing.overload`) measured, and the lines that
print it: once-a-second readings, lag, memory, drain time and canary delays."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Reading:
    at: float  # seconds since the burst began
    lag: float  # journey_consumer_lag summed over partitions
    rss_mib: float
    done: float  # input records applied (or skipped, or dead-lettered) so far
    rate: float  # of those, per second since the previous reading
    health: int | None  # /health status (None: no answer within its timeout)
    producing: bool


@dataclass
class OverloadReport:
    events: int
    poison_events: int
    users: int
    produce_seconds: float = 0.0
    drain_seconds: float | None = None
    rss_before_mib: float = 0.0
    rss_after_mib: float = 0.0
    rss_hwm_mib: float = 0.0
    readings: list[Reading] = field(default_factory=list)
    canary_others: list[float] = field(default_factory=list)
    canary_poison: list[float] = field(default_factory=list)
    canaries_unseen: int = 0
    canary_timeline: list[tuple[float, int, float]] = field(default_factory=list)
    poison_partition: int = 0
    exited: int | None = None

    @property
    def peak_lag(self) -> float:
        return max((r.lag for r in self.readings), default=0.0)

    @property
    def peak_rss_mib(self) -> float:
        return max([self.rss_hwm_mib, *(r.rss_mib for r in self.readings)])

    @property
    def health_codes(self) -> Counter[int | None]:
        return Counter(r.health for r in self.readings)

    @property
    def peak_rate(self) -> float:
        return max((r.rate for r in self.readings), default=0.0)

    def canary_windows(self, width: float) -> list[str]:
        """Median canary delay per ``width`` seconds of production time, poison's
        partition against the others: how long a fresh event waited, as the run went."""
        out = []
        end = max((t for t, _, _ in self.canary_timeline), default=0.0)
        start = 0.0
        while start <= end:
            here = [(p, d) for t, p, d in self.canary_timeline if start <= t < start + width]
            others = sorted(d for p, d in here if p != self.poison_partition)
            poison = sorted(d for p, d in here if p == self.poison_partition)

            def med(xs: list[float]) -> str:
                return f"{xs[len(xs) // 2]:6.1f}s" if xs else "      -"

            out.append(f"  produced {start:5.0f}-{start + width:5.0f}s: other partitions "
                       f"{med(others)} (max {others[-1] if others else 0:5.1f}s), poison's "
                       f"{med(poison)}")
            start += width
        return out

    def lines(self) -> list[str]:
        def stats(xs: list[float]) -> str:
            if not xs:
                return "none seen"
            s = sorted(xs)
            return (f"n={len(s)} median {s[len(s) // 2]:.1f}s max {s[-1]:.1f}s")

        drain = "never" if self.drain_seconds is None else f"{self.drain_seconds:.1f}s"
        ratio = self.peak_rss_mib / self.rss_before_mib if self.rss_before_mib else 0.0
        return [
            (f"burst: {self.events + self.poison_events:,} events ({self.users:,} users + a "
             f"poison user with {self.poison_events:,}) produced in "
             f"{self.produce_seconds:.1f}s"),
            (f"lag: peak {self.peak_lag:,.0f} records; drained {drain} after the burst "
             f"began; applied at up to {self.peak_rate:,.0f} events/s"),
            (f"worker RSS: {self.rss_before_mib:.0f} MiB before, peak "
             f"{self.peak_rss_mib:.0f} MiB ({ratio:.2f}x), {self.rss_after_mib:.0f} MiB "
             "after the drain"),
            (f"canary delay, other partitions: {stats(self.canary_others)}; poison's "
             f"partition: {stats(self.canary_poison)}; unseen {self.canaries_unseen}"),
            f"/health answers: {dict(self.health_codes)}; worker exit code {self.exited}",
        ]
