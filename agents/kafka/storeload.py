"""What both table stores share (``agents.kafka.tablestore`` has the overview): reading
each assigned partition's changelog in bulk, the offset each partition holds, the clamp
on what is reported to faust, and each held partition's rows."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

from agents.kafka.changelog_read import read_changelog
from agents.kafka.tablerows import KeptRows
from streams.core.rebuild import Rows
from streams.settings import Settings

log = logging.getLogger("journey.tablestore")


class LoadingStore(KeptRows):
    """What both stores share: bulk loading on assignment, offsets held, the clamp, and
    the rows of the partitions no processor here serves (``streams.core.rebuild.Rows``)."""

    settings: Settings
    bootstrap: str
    table: Any

    def _setup(self) -> None:
        self.reported: dict[int, int] = {}  # the broker's end - 1 when last loaded
        self.loaded_records = 0  # read in bulk since start (a figure for the logs)
        self._setup_rows()

    def changelog(self) -> str:
        return str(self.table.changelog_topic.get_topic_name())

    def held_offset(self, partition: int) -> int:
        raise NotImplementedError

    def apply_records(self, partition: int, records: list[Any]) -> None:
        raise NotImplementedError

    def apply_changelog_batch(self, batch: Iterable[Any], to_key: Callable[[Any], Any],
                              to_value: Callable[[Any], Any]) -> None:
        """faust's recovery and standby reading: the same as a bulk read, by partition."""
        by_partition: dict[int, list[Any]] = defaultdict(list)
        for event in batch:
            by_partition[event.message.partition].append(event.message)
        for p, messages in by_partition.items():
            before = self.loaded_records
            self.apply_records(p, messages)
            self.loaded_records = before  # not a bulk read

    def persisted_offset(self, tp: Any) -> int | None:
        return self._clamped(tp.partition, self.held_offset(tp.partition))

    def _clamped(self, partition: int, held: int | None) -> int | None:
        """The offset to report to faust: what is held, but never past the highwater faust
        will read (it refuses a persisted offset above it; the embedded broker reports
        the end low). Records from there to what is held are skipped when faust reads
        them."""
        if held is None or held < 0:
            return None
        ceiling = self.reported.get(partition)
        return held if ceiling is None else min(held, ceiling)

    async def load(self, partitions: Iterable[int]) -> None:
        wanted = {p: self.held_offset(p) + 1 for p in partitions}
        if not wanted:
            return
        for p in wanted:  # a partition read from nothing: its rows are complete from here
            if p not in self.rows and p not in self._scans and not self.has_data(p):
                self.rows[p] = Rows.of(self.settings)
        began, before = time.monotonic(), self.loaded_records
        try:
            reported = await read_changelog(self.settings, self.bootstrap, self.changelog(),
                                            wanted, self.apply_records)
        except Exception as exc:  # noqa: BLE001 - faust's own recovery reads what is missing
            log.warning("reading the changelog in bulk failed (%s: %s); faust's recovery "
                        "reads it instead", type(exc).__name__, exc)
            return
        self.reported.update(reported)
        log.info("changelog partitions %s: %d records read in %.1fs", sorted(wanted),
                 self.loaded_records - before, time.monotonic() - began)
