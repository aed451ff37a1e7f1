"""One partition's churn-model refit, at each snapshot instant.

In order: label the snapshot taken one horizon ago from the sampled users' current state,
and score how its stored scores fared (the model's live quality); pool the newest
labelled snapshots and fit the logistic regression when they hold enough of both
outcomes, else keep the buy-till-you-die score (the fallback); set the stage thresholds
from the new model's own probabilities on today's sample, unless the operator pinned
them; take today's snapshot, with each buyer's score by the model now in force.

A refit read back from the refit log (a restarted partition going over its last batch)
computes nothing: the model is the logged one, and the snapshot work comes from the
records the first pass wrote (see ``memory``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from streams.core.churn import features, fit
from streams.core.churn.memory import Buyers, ChurnMemory, Snapshot
from streams.core.churn.model import BTYD, ChurnModel, score_each
from streams.core.state import DAY, UserState
from streams.settings import Settings

CHURNED_RECALL = 0.80  # churned: the model expects this share of lapsers above the threshold
DECLINING_RECALL = 0.95  # declining (the churn warning) comes earlier and catches more


def is_snapshot_instant(at: float, settings: Settings) -> bool:
    """Snapshots fall on an epoch-aligned grid of ``churn_snapshot_days``, a subset of
    the refit grid."""
    step = settings.churn_snapshot_days * DAY
    return abs(at / step - round(at / step)) < 1e-9


def training_set(pool: Sequence[Snapshot]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for snap in pool:
        rows, labels, _ = snap.labelled()
        xs.append(features.feature_matrix(rows))
        ys.append(labels.astype(np.float64))
    if not xs:
        return np.empty((0, 0)), np.empty(0)
    return np.vstack(xs), np.concatenate(ys)


def refit(memory: ChurnMemory, at: float, buyers: Buyers,
          fallback: Callable[[UserState], float], settings: Settings,
          logged: ChurnModel | None = None) -> ChurnModel:
    """The churn model from ``at`` on. ``buyers``: the sample's buyers as they are at
    ``at``, by hash; ``fallback``: a buyer's buy-till-you-die churn_risk at ``at``;
    ``logged``: the model a first pass made at ``at``, if the refit log has it."""
    horizon = settings.churn_horizon_days * DAY
    if logged is not None:
        memory.label_due(at, horizon, None)
        memory.pool()
        memory.take_logged(at)
        return logged
    memory.stash.clear()  # nothing after a fresh refit comes from the log
    by_hash = {h: s.last_purchase_at for h, s in buyers}
    matured = memory.label_due(at, horizon, by_hash.get)
    live = None
    if matured is not None:
        _, labels, scores = matured.labelled()
        live = fit.quality(scores, labels, matured.scorer)
    x, y = training_set(memory.pool())
    positives = int(y.sum())
    if y.size >= settings.churn_min_rows \
            and min(positives, y.size - positives) >= settings.churn_min_class:
        model = fit.logit_model(fit.fit(x, y), at, settings.churn_horizon_days, int(y.size),
                                positives, live)
        now_scores = score_each(model, [s for _, s in buyers], at)
        model = with_thresholds(model, np.array(now_scores), settings)
    else:
        model = ChurnModel(BTYD, at, settings.churn_horizon_days, rows=int(y.size),
                           positives=positives, quality=live)
        now_scores = [fallback(s) for _, s in buyers]
    memory.take(at, model.kind, buyers, now_scores)
    return model


def with_thresholds(model: ChurnModel, scores: np.ndarray, settings: Settings) -> ChurnModel:
    """``model`` with its stage thresholds: the operator's, or label-free from the
    model's own probabilities. Declining never lies above churned."""
    churned = settings.churn_churned_threshold or fit.recall_threshold(
        scores, CHURNED_RECALL, settings.churn_gone_horizons)
    declining = settings.churn_declining_threshold \
        or fit.recall_threshold(scores, DECLINING_RECALL)
    return ChurnModel(model.kind, model.fitted_at, model.horizon_days, model.weights,
                      model.bias, min(declining, churned), churned, model.rows,
                      model.positives, model.quality)
