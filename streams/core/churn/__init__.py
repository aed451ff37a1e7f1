"""The churn score learned from the stream: p(no purchase within a horizon).

- ``model``: the score (a logistic regression on 13 features of a buyer) and the
  crossing solver, pure ``math``;
- ``features``: the features spelled out, and the rows a snapshot keeps;
- ``fit``: the fit, label-free thresholds, and the live quality of past scores;
- ``memory``: the training set, snapshots of the sampled buyers labelled a horizon later,
  and how a worker persists them;
- ``learner``: one snapshot refit, with the fallback to the buy-till-you-die score;
- ``stages``: decline and churn under the learned score, timer-driven.

See docs/lifecycle.md#the-churn-score.
"""
