"""The users table as the worker's processors see it.

One table holds every user's state, the redirect of every id merged into another user
(under that id, in place of its state), and, under keys of their own, each partition's
context (its checkpoint) and the churn model's snapshots. The worker publishes a batch's
writes in three groups (``changelog_groups``): snapshots, checkpoints, then (after the
batch's outputs) users.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from streams.core.identity import Redirect
from streams.core.partitioning import partition_for
from streams.core.state import UserState

CTX_PREFIX = "\x00partition:"
SNAPSHOT_PREFIX = "\x00snapshot:"
Staged = tuple[str, int, bytes, bytes | None]  # key, partition, key bytes, value (None: delete)


def _placed(stem: str, partition: int, partitions: int) -> str:
    """``stem`` with the first suffix that the default partitioner puts on ``partition``
    itself, so the record is restored with, and only with, that partition's users."""
    i = 0
    while True:
        key = f"{stem}:{i}"
        if partition_for(key, partitions) == partition:
            return key
        i += 1


def ctx_key(partition: int, partitions: int, prefix: str = CTX_PREFIX) -> str:
    """The key of ``partition``'s context (or, with another ``prefix``, of another
    per-partition record such as the bootstrap marker)."""
    return _placed(f"{prefix}{partition}", partition, partitions)


def snapshot_key(partition: int, partitions: int, at: float, kind: str) -> str:
    """The key of one record (``kind``: base or labels) of ``partition``'s churn-model
    snapshot taken at ``at``."""
    return _placed(f"{SNAPSHOT_PREFIX}{partition}:{at!r}:{kind}", partition, partitions)


def changelog_groups(pending: list[Staged]) -> tuple[list[list[Staged]], list[Staged]]:
    """A batch's staged changelog writes in the groups the worker publishes, each
    acknowledged before the next is sent: before the batch's outputs, the churn model's
    new snapshot records, then the partitions' checkpoints (which claim the refits that
    made them, and record the order the batch took its input in); after the outputs, the
    users and the deletes of snapshots no checkpoint lists any more (see
    :meth:`Pipeline.commit_state`)."""
    snapshots = [w for w in pending if w[0].startswith(SNAPSHOT_PREFIX) and w[3] is not None]
    contexts = [w for w in pending if w[0].startswith(CTX_PREFIX)]
    rest = [w for w in pending if not w[0].startswith(CTX_PREFIX)
            and not (w[0].startswith(SNAPSHOT_PREFIX) and w[3] is not None)]
    return [g for g in (snapshots, contexts) if g], rest


def table_value(value: Any) -> Any:
    """Table values are objects in a memory store, codec bytes in RocksDB."""
    if isinstance(value, bytes):
        from agents.kafka.codec import loads

        return loads(value)
    return value


class WriteBack(MutableMapping[str, UserState]):
    """A processor's view of the table: reads through, writes held until the batch ends,
    so a user touched by many events in a batch costs one changelog record. The users'
    states; their redirects are :attr:`redirects`, a view of the same writes, so a key
    that turns from one into the other is written once, as what it became."""

    def __init__(self, table: MutableMapping[str, Any],
                 write: Callable[[str, Any], None] | None = None) -> None:
        self.table = table
        # write(key, None) deletes; a plain mapping pops the key
        self.write = write or self._set
        self.dirty: dict[str, UserState | Redirect] = {}
        self.redirects = Redirects(self)

    def value(self, key: str) -> Any:
        got = self.dirty.get(key)
        return got if got is not None else table_value(self.table.get(key))

    def _set(self, key: str, value: Any) -> None:
        if value is None:
            self.table.pop(key, None)
        else:
            self.table[key] = value

    def __getitem__(self, key: str) -> UserState:
        value = self.value(key)
        if not isinstance(value, UserState):
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:  # hot path: avoid KeyError
        value = self.dirty.get(key)
        if value is None:
            value = table_value(self.table.get(key))
        return value if isinstance(value, UserState) else default

    def __setitem__(self, key: str, value: UserState) -> None:
        self.dirty[key] = value

    def __delitem__(self, key: str) -> None:
        raise TypeError("user state is never deleted: a merged user's redirect replaces it")

    def __iter__(self) -> Any:
        return (k for k, _ in self.items())

    def items(self) -> Any:  # type: ignore[override]
        """User states only (the table also holds redirects and partition contexts)."""
        return self._entries(UserState)

    def redirected(self) -> Any:
        """The ids that hold a redirect."""
        return (k for k, _ in self._entries(Redirect))

    def _entries(self, kind: type) -> Any:
        dirty = self.dirty
        for key, value in list(self.table.items()):
            if isinstance(key, bytes):
                key = key.decode()
            value = dirty[key] if key in dirty else table_value(value)
            if isinstance(value, kind):
                yield key, value
        table = self.table
        for key, value in list(dirty.items()):
            if key not in table and isinstance(value, kind):
                yield key, value

    def __len__(self) -> int:
        return len(self.table)

    def flush(self) -> None:
        write = self.write
        for key, value in self.dirty.items():
            write(key, value)
        self.dirty.clear()


class Redirects(MutableMapping[str, Redirect]):
    """The redirects in a :class:`WriteBack`: writing one replaces the id's state."""

    def __init__(self, store: WriteBack) -> None:
        self.store = store

    def __getitem__(self, key: str) -> Redirect:
        value = self.store.value(key)
        if not isinstance(value, Redirect):
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self.store.value(key)
        return value if isinstance(value, Redirect) else default

    def __setitem__(self, key: str, value: Redirect) -> None:
        self.store.dirty[key] = value

    def __delitem__(self, key: str) -> None:
        raise TypeError("a redirect is only ever replaced, by the state of a revived user")

    def __iter__(self) -> Any:
        return self.store.redirected()

    def __len__(self) -> int:
        return sum(1 for _ in self.store.redirected())
