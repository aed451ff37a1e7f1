"""Per-partition index of inactivity deadlines.

A heap of (deadline, user) with lazy deletion: moving a user's deadline pushes a new entry
and leaves the old one to be skipped when it surfaces. Popping what is due costs
O(due * log n), never a scan of all users. The heap is compacted when stale entries
outnumber live ones, so its size stays within twice the number of users with a deadline.
"""

from __future__ import annotations

import heapq


class DeadlineIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._current: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._current)

    def set(self, user_id: str, deadline: float | None) -> None:
        old = self._current.get(user_id)
        if deadline == old:
            return
        if deadline is None:
            del self._current[user_id]
        else:
            self._current[user_id] = deadline
            heapq.heappush(self._heap, (deadline, user_id))
        if len(self._heap) > 2 * len(self._current) + 64:
            self._compact()

    def get(self, user_id: str) -> float | None:
        return self._current.get(user_id)

    def next_due(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float, inclusive: bool = True) -> tuple[float, str] | None:
        """The earliest deadline at or before ``now`` (strictly before if not inclusive)."""
        self._drop_stale()
        if not self._heap:
            return None
        deadline, user_id = self._heap[0]
        if deadline < now or (inclusive and deadline == now):
            heapq.heappop(self._heap)
            del self._current[user_id]
            return deadline, user_id
        return None

    def due_count(self, now: float) -> int:
        """How many deadlines are already due (the timer backlog); O(due)."""
        return sum(1 for d in self._current.values() if d <= now) if len(self._current) < 4096 \
            else self._due_count_heap(now)

    def _due_count_heap(self, now: float) -> int:
        count, stack = 0, [0]
        heap = self._heap
        while stack:
            i = stack.pop()
            if i >= len(heap) or heap[i][0] > now:
                continue
            d, u = heap[i]
            if self._current.get(u) == d:
                count += 1
            stack.extend((2 * i + 1, 2 * i + 2))
        return count

    def _drop_stale(self) -> None:
        heap, current = self._heap, self._current
        while heap and current.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)

    def _compact(self) -> None:
        self._heap = [(d, u) for u, d in self._current.items()]
        heapq.heapify(self._heap)
