"""What a partition keeps besides its users' states: its context.

The live worker stores it in the users table under a key of the partition's own (with
the input offsets it claims), as a plain dict; :meth:`PartitionContext.to_dict` and
:meth:`PartitionContext.from_dict` are that dict's only writer and reader, so stored
checkpoints stay readable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.core.credits import held_from_entry, held_to_entry
from streams.core.event import Event
from streams.core.population import Model


@dataclass(slots=True)
class PartitionContext:
    clock: float | None  # the partition's event time; None before its first event
    model: Model
    next_refit_at: float | None
    applied_position: int  # the newest input offset applied (-1: none)
    held_credits: list[Event]  # news from other partitions, earliest first
    # a checkpoint's re-fits, by instant (model as Model.to_list): None outside one
    refits: dict[float, list[object]] | None = None
    live_from: float | None = None  # alerts before it are historical; None: none are

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "clock": self.clock, "model": self.model.to_list(),
            "next_refit_at": self.next_refit_at, "applied_position": self.applied_position,
            "held_credits": [held_to_entry(e) for e in self.held_credits]}
        if self.refits is not None:
            d["refits"] = [[t, m] for t, m in sorted(self.refits.items())]
        if self.live_from is not None:  # only after a bootstrap
            d["live_from"] = self.live_from
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PartitionContext:
        """A stored context (other keys, such as the worker's offsets, are left out)."""
        clock = d.get("clock")
        refits = d.get("refits")
        live_from = d.get("live_from")
        return cls(clock=None if clock is None else float(clock),
                   model=Model.from_list(d["model"]),
                   next_refit_at=d.get("next_refit_at"),
                   applied_position=int(d.get("applied_position", -1)),
                   held_credits=[held_from_entry(c) for c in d.get("held_credits") or ()],
                   refits=None if refits is None else {float(t): m for t, m in refits},
                   live_from=None if live_from is None else float(live_from))
