"""Scoring a risk score against what users did later: rank AUC and a reliability table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def auc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Probability that a random positive outscores a random negative, ties counting half.

    Computed from average ranks (the Mann-Whitney U), so it is O(n log n). None when
    either class is empty, since the question has no answer then.
    """
    n = len(scores)
    if n != len(positive):
        raise ValueError("scores and labels differ in length")
    n_pos = sum(1 for p in positive if p)
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(n), key=lambda i: scores[i])
    rank_sum_pos = 0.0
    i = 0
    while i < n:
        j = i
        while j + 1 < n and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        mean_rank = (i + j) / 2 + 1  # ranks are 1-based; tied scores share their mean
        rank_sum_pos += mean_rank * sum(1 for k in range(i, j + 1) if positive[order[k]])
        i = j + 1
    u = rank_sum_pos - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


@dataclass(frozen=True, slots=True)
class Bin:
    lo: float
    hi: float
    users: int
    mean_predicted: float
    observed_rate: float


def reliability(scores: Sequence[float], positive: Sequence[bool],
                bins: int = 10) -> list[Bin]:
    """Equal-width bins of a score in [0, 1] (tenths by default), the empty ones left out:
    mean score against the share of positives in each."""
    users, score_sum, positives = [0] * bins, [0.0] * bins, [0] * bins
    for s, p in zip(scores, positive, strict=True):
        k = min(max(int(s * bins), 0), bins - 1)  # a score of exactly 1 joins the top bin
        users[k] += 1
        score_sum[k] += s
        positives[k] += 1 if p else 0
    return [Bin(k / bins, (k + 1) / bins, users[k], score_sum[k] / users[k],
                positives[k] / users[k]) for k in range(bins) if users[k]]
