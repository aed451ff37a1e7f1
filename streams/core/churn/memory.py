"""The churn model's training memory: snapshots of a partition's sampled buyers.

At each snapshot instant the sampled buyers are recorded as they are (a row each, see
``features.ROW_COLUMNS``) with the score each had then. One horizon later the snapshot
is labelled from the same users' state: 1 if they have not bought since. The newest
``POOL`` labelled snapshots are the training set; older ones are dropped.

Snapshots are too big for a partition's checkpoint (about 50 bytes per user), so a live
worker keeps each as records of its own in the table (``Snapshot.record`` and
``labels_record``), written when taken or labelled, *before* the checkpoint that claims
the refit, and deleted only once a later checkpoint no longer lists them. The memory
tracks what to write and delete for the worker when ``persist`` is on (replay and the
test harness keep snapshots in memory only). A restarted partition reads every record
back (``restore``): the checkpoint says which snapshots were live, and labelled, before
its batch; re-fits taken from the refit log take and label theirs from the records
already written, because the users may by then be past the refit's instant.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streams.core.churn import features
from streams.core.state import UserState

POOL = 3  # labelled snapshots a fit pools
BASE, LABELS = "base", "labels"  # the two records of a snapshot
Buyers = Sequence[tuple[int, UserState]]  # (user hash, state), hashes ascending


def _pack(a: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(a.tobytes(), 9)).decode()


def _unpack(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=dtype).copy()


@dataclass(slots=True)
class Snapshot:
    """A partition's sampled buyers at ``at``, with the score each had then (by
    ``scorer``) and, once a horizon has passed, whether each made no purchase since."""

    at: float
    scorer: str
    keys: np.ndarray  # uint64 user hashes, ascending
    rows: np.ndarray  # float32, one row per key
    scores: np.ndarray  # float32
    labels: np.ndarray | None = None  # uint8, 1: no purchase in (at, at + horizon]
    kept: np.ndarray | None = None  # bool: still in the sample when labelled

    @classmethod
    def take(cls, at: float, scorer: str, buyers: Buyers, scores: Sequence[float]) -> Snapshot:
        rows = np.array([features.row(s, at) for _, s in buyers], dtype=np.float32)
        return cls(at, scorer, np.array([h for h, _ in buyers], dtype=np.uint64),
                   rows.reshape(len(buyers), len(features.ROW_COLUMNS)),
                   np.asarray(scores, dtype=np.float32))

    def label(self, last_purchase: Callable[[int], float | None]) -> None:
        """Label from the users' current last purchase; users no longer in the sample
        are left out (unbiased: the sample is chosen by hash)."""
        labels = np.zeros(self.keys.size, dtype=np.uint8)
        kept = np.zeros(self.keys.size, dtype=bool)
        for i, key in enumerate(self.keys.tolist()):
            last = last_purchase(key)
            if last is not None:
                kept[i] = True
                labels[i] = last < self.at
        self.labels, self.kept = labels, kept

    def labelled(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, labels and scores of the users kept at labelling."""
        assert self.labels is not None and self.kept is not None
        return self.rows[self.kept], self.labels[self.kept], self.scores[self.kept]

    def record(self) -> dict[str, Any]:
        """The snapshot as taken: arrays as base64 of zlib of little-endian bytes."""
        return {"at": self.at, "scorer": self.scorer, "n": int(self.keys.size),
                "keys": _pack(self.keys.astype("<u8")), "rows": _pack(self.rows.astype("<f4")),
                "scores": _pack(self.scores.astype("<f4"))}

    def labels_record(self) -> dict[str, Any]:
        assert self.labels is not None and self.kept is not None
        return {"at": self.at, "n": int(self.keys.size), "labels": _pack(np.packbits(self.labels)),
                "kept": _pack(np.packbits(self.kept))}

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> Snapshot:
        n = int(rec["n"])
        return cls(float(rec["at"]), str(rec["scorer"]), _unpack(rec["keys"], "<u8"),
                   _unpack(rec["rows"], "<f4").reshape(n, len(features.ROW_COLUMNS)),
                   _unpack(rec["scores"], "<f4"))

    def apply_labels(self, rec: Mapping[str, Any]) -> None:
        n = self.keys.size
        self.labels = np.unpackbits(_unpack(rec["labels"], "u1"))[:n].copy()
        self.kept = np.unpackbits(_unpack(rec["kept"], "u1"))[:n].astype(bool)


Write = tuple[float, str, dict[str, Any]]  # snapshot instant, BASE or LABELS, record


class ChurnMemory:
    """One partition's live snapshots, and (with ``persist``) the records to write."""

    def __init__(self, persist: bool = False) -> None:
        self.persist = persist
        self.live: dict[float, Snapshot] = {}
        self.stash: dict[tuple[float, str], Mapping[str, Any]] = {}  # records at restore
        self._writes: list[tuple[float, str, Snapshot]] = []
        self._dropped: list[float] = []  # since the last checkpoint
        self._deletable: list[float] = []  # dropped before it: no checkpoint needs them

    # --- the refit steps -----------------------------------------------------------

    def label_due(self, at: float, horizon: float,
                  last_purchase: Callable[[int], float | None] | None) -> Snapshot | None:
        """Label the snapshots a horizon old by ``at`` (from the users, or with
        ``last_purchase`` None from the records a logged refit wrote); the newest one."""
        newest = None
        for t in sorted(t for t, s in self.live.items() if s.labels is None and t + horizon <= at):
            snap = self.live[t]
            if last_purchase is not None:
                snap.label(last_purchase)
                self._write(t, LABELS, snap)
            elif (rec := self.stash.get((t, LABELS))) is not None:
                snap.apply_labels(rec)
            else:
                continue  # written by nobody: only a torn or foreign table gets here
            newest = snap
        return newest

    def pool(self, size: int = POOL) -> list[Snapshot]:
        """The newest ``size`` labelled snapshots; older labelled ones are dropped."""
        labelled = sorted((t for t, s in self.live.items() if s.labels is not None),
                          reverse=True)
        for t in labelled[size:]:
            del self.live[t]
            if self.persist:
                self._dropped.append(t)
        return [self.live[t] for t in labelled[:size]]

    def take(self, at: float, scorer: str, buyers: Buyers, scores: Sequence[float]) -> None:
        self.live[at] = snap = Snapshot.take(at, scorer, buyers, scores)
        self._write(at, BASE, snap)

    def take_logged(self, at: float) -> None:
        """The snapshot a logged refit took, from its record."""
        rec = self.stash.get((at, BASE))
        if rec is not None:
            self.live[at] = Snapshot.from_record(rec)

    def _write(self, at: float, kind: str, snap: Snapshot) -> None:
        if self.persist:
            self._writes.append((at, kind, snap))

    # --- persistence (the worker) --------------------------------------------------

    def listing(self) -> list[list[Any]]:
        """The live snapshots, for the partition's context: [instant, labelled]."""
        return [[t, self.live[t].labels is not None] for t in sorted(self.live)]

    def records(self) -> dict[tuple[float, str], dict[str, Any]]:
        """Every live snapshot as the records a worker would hold (for a restore)."""
        out = {}
        for t, snap in self.live.items():
            out[(t, BASE)] = snap.record()
            if snap.labels is not None:
                out[(t, LABELS)] = snap.labels_record()
        return out

    def take_writes(self) -> list[Write]:
        """Records to write before the next checkpoint."""
        out = [(t, kind, snap.record() if kind == BASE else snap.labels_record())
               for t, kind, snap in self._writes]
        self._writes.clear()
        return out

    def take_deletes(self) -> list[float]:
        """Instants whose records may go: dropped before the previous checkpoint, which
        the checkpoint about to be written no longer lists."""
        out, self._deletable = self._deletable, []
        return out

    def checkpointed(self) -> None:
        """A checkpoint was taken: what was dropped before it may go after the next."""
        self._deletable.extend(self._dropped)
        self._dropped.clear()

    def undeleted(self) -> list[float]:
        """Dropped snapshots whose records have not been deleted yet."""
        return sorted(self._deletable + self._dropped)

    def restore(self, listing: Iterable[Sequence[Any]], dropped: Iterable[float],
                records: Mapping[tuple[float, str], Mapping[str, Any]]) -> None:
        """The live snapshots a checkpoint lists, from the partition's records; the
        dropped ones it names are deleted after the next checkpoint."""
        self.stash = dict(records)
        self.live.clear()
        self._writes.clear()
        self._dropped.clear()
        for t, labelled in listing:
            base = self.stash.get((float(t), BASE))
            if base is None:
                continue
            snap = Snapshot.from_record(base)
            if labelled and (rec := self.stash.get((float(t), LABELS))) is not None:
                snap.apply_labels(rec)
            self.live[float(t)] = snap
        self._deletable = sorted(set(dropped)) if self.persist else []
