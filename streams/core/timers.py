"""Per-partition index of inactivity deadlines.

A heap of (deadline, user). Activity mostly moves a deadline *later*, so the index keeps
the earlier entry and lets it surface: the processor then sees the user's true deadline
is later and re-registers it (``register``). That makes a busy user cost one heap entry
per deadline that really comes due, not one per event. A sweep pops only what is due:
O(due * log n), never a scan of all users.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class DeadlineIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._registered: dict[str, float] = {}  # the entry each user has in the heap

    def __len__(self) -> int:
        return len(self._registered)

    def register(self, user_id: str, deadline: float) -> None:
        """Make sure the user is woken at or before ``deadline``."""
        current = self._registered.get(user_id)
        if current is not None and current <= deadline:
            return  # an earlier wake-up is already queued; it will re-register
        self._registered[user_id] = deadline
        heapq.heappush(self._heap, (deadline, user_id))
        if len(self._heap) > 2 * len(self._registered) + 64:
            self._compact()

    def load(self, entries: Iterable[tuple[str, float]]) -> None:
        """Register many users at once, each at most once (a restore): the same index as
        ``register`` one by one, built in O(n) instead of O(n log n)."""
        registered = self._registered
        heap = self._heap
        for user_id, deadline in entries:
            current = registered.get(user_id)
            if current is not None and current <= deadline:
                continue
            registered[user_id] = deadline
            heap.append((deadline, user_id))
        heapq.heapify(heap)
        if len(heap) > 2 * len(registered) + 64:
            self._compact()

    def cancel(self, user_id: str) -> None:
        """Never wake the user (its heap entry is left to be dropped as superseded)."""
        self._registered.pop(user_id, None)

    def users(self) -> list[str]:
        """The users with a wake-up registered."""
        return list(self._registered)

    def wake_at(self, user_id: str) -> float | None:
        """When the user will be woken (None: not registered)."""
        return self._registered.get(user_id)

    def earliest(self) -> float:
        """The next wake-up (inf when none); drops superseded entries on the way."""
        heap, registered = self._heap, self._registered
        while heap and registered.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else float("inf")

    def pop_due(self, now: float) -> tuple[float, str] | None:
        """The earliest registered wake-up at or before ``now``, removed from the index."""
        heap, registered = self._heap, self._registered
        while heap:
            deadline, user_id = heap[0]
            if registered.get(user_id) != deadline:
                heapq.heappop(heap)  # superseded by an earlier registration
                continue
            if deadline > now:
                return None
            heapq.heappop(heap)
            del registered[user_id]
            return deadline, user_id
        return None

    def due_count(self, now: float) -> int:
        """Wake-ups already due (the timer backlog), walking only the due part of the heap."""
        count, stack, heap = 0, [0], self._heap
        while stack:
            i = stack.pop()
            if i >= len(heap) or heap[i][0] > now:
                continue
            d, u = heap[i]
            if self._registered.get(u) == d:
                count += 1
            stack.extend((2 * i + 1, 2 * i + 2))
        return count

    def _compact(self) -> None:
        self._heap = [(d, u) for u, d in self._registered.items()]
        heapq.heapify(self._heap)
