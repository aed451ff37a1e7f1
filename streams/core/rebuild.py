"""Restoring a partition from compact rows instead of whole user states.

``PartitionProcessor.restore`` rebuilds the deadline index, the population sample and the
census from every user state of the partition. Of a state it needs three things: the
user id, when the user is to be woken, and the census entry. A store that keeps states
encoded (the live worker's table holds ``UserState.to_list()`` lists, encoded) can hand
over just those, read straight from the encoded list, without building a ``UserState``
for each of a million users; :func:`restore` then builds the same index, sample and
census in bulk (``DeadlineIndex.load``, ``Sample.load``). :class:`Rows` keeps a
partition's rows up to date while its states change, so that even that read is saved.
"""

from __future__ import annotations

from collections import Counter, namedtuple
from collections.abc import Iterable, Mapping
from typing import Any

from streams.core.census import Entry, census_key
from streams.core.context import PartitionContext
from streams.core.population import Sample
from streams.core.processor import PartitionProcessor
from streams.core.state import BLANK_RECORD, CHURNED, RECORD_FIELDS, UserState
from streams.core.uplift import uplift_key
from streams.settings import Settings

Row = tuple[str, float | None, Entry]  # user id, wake-up instant, census entry
Snapshots = Mapping[tuple[float, str], Mapping[str, Any]]  # see PartitionProcessor.restore


class _Fields(namedtuple("_Fields", RECORD_FIELDS)):  # type: ignore[misc]
    """A state's list as read-only attributes, enough for the census entry."""

    __slots__ = ()
    funnel_index = UserState.funnel_index

    @property
    def sparse(self) -> _Fields:
        """The record holds the sparse fields itself (``UserState.sparse``)."""
        return self


_make = _Fields._make
_N_FIELDS = len(RECORD_FIELDS)
# A record written before held_refunds lacks only that: its row is read the short way too.
_PADDABLE = RECORD_FIELDS.index("held_refunds")


def row_of_list(values: list[Any], window: float) -> Row:
    """The row of a state given as ``UserState.to_list()`` (decoded, not yet a state);
    ``window``: the census's uplift window, in seconds."""
    n = len(values)
    if n != _N_FIELDS:
        if not _PADDABLE <= n < _N_FIELDS:  # an older or newer layout: take the long way
            return row_of_state(UserState.from_list(values), window)
        values = [*values, *BLANK_RECORD[n:]]  # only fields the row does not read are missing
    view: Any = _make(values)
    return view.user_id, view.wake_at, (census_key(view), uplift_key(view, window))


def row_of_state(state: UserState, window: float) -> Row:
    return state.user_id, state.wake_at, (census_key(state), uplift_key(state, window))


def restore(proc: PartitionProcessor, ctx: PartitionContext | None, rows: Iterable[Row],
            snapshots: Snapshots | None = None) -> None:
    """``proc.restore(ctx, states, (), snapshots)`` given the states' rows: the same index,
    sample and census (each is a function of the set of users, not of their order)."""
    proc.restore(ctx, (), (), snapshots)
    users: list[str] = []
    wakes: list[tuple[str, float]] = []
    census: Counter[Entry] = Counter()
    dormant = proc.dormant
    for user_id, wake_at, entry in rows:
        users.append(user_id)
        census[entry] += 1
        if wake_at is not None:
            wakes.append((user_id, wake_at))
        elif _active_buyer(entry):
            dormant.add(user_id)
    proc.sample.load(users)
    _count(proc, census)
    proc.index.load(wakes)


def _active_buyer(entry: Entry) -> bool:
    """Whether a census entry is a buyer's who has not churned (see ``proc.dormant``)."""
    key = entry[0]
    return key[2] and key[0] != CHURNED


def _count(proc: PartitionProcessor, census: Counter[Entry]) -> None:
    for (key, recalls), n in census.items():
        proc.census.counts[key] += n
        proc.census.recalls.count(recalls, n)


class Rows:
    """A partition's rows, kept up to date while its users change outside a processor (a
    standby copy, or a table read from disk before its partition is assigned), so that a
    processor taking the partition over is restored without reading every user again.

    Every change of a user's state must reach :meth:`set` (or :meth:`remove`, or
    :meth:`redirect` when the id is merged into another user); then :meth:`restore` gives
    the processor that ``restore`` from the states and redirects would.
    """

    __slots__ = ("_keys", "census", "key_of", "redirected", "sample", "sample_exact", "wake",
                 "window")

    def __init__(self, sample_size: int, window: float) -> None:
        self.window = window  # the census's uplift window, in seconds
        self.wake: dict[str, float] = {}
        self.key_of: dict[str, Entry] = {}
        self.census: Counter[Entry] = Counter()
        self.sample = Sample(sample_size)
        self.sample_exact = True  # until a user is removed (the sample cannot forget)
        self._keys: dict[Entry, Entry] = {}  # one tuple per distinct entry
        self.redirected: set[str] = set()  # ids merged into another user

    @classmethod
    def of(cls, settings: Settings) -> Rows:
        """Rows as ``settings``' processors count them."""
        return cls(settings.population_sample_size, settings.uplift_window_days * 86400.0)

    def __len__(self) -> int:
        return len(self.key_of)

    def set(self, row: Row) -> None:
        user_id, wake_at, key = row
        if self.redirected:  # a merged id revived as a user
            self.redirected.discard(user_id)
        key = self._keys.setdefault(key, key)
        old = self.key_of.get(user_id)
        if old is None:
            self.sample.offer(user_id)
        elif old is not key:
            self._uncount(old)
        if old is not key:
            self.key_of[user_id] = key
            self.census[key] += 1
        if wake_at is None:
            self.wake.pop(user_id, None)
        else:
            self.wake[user_id] = wake_at

    def remove(self, user_id: str) -> None:
        old = self.key_of.pop(user_id, None)
        if old is not None:
            self._uncount(old)
            self.wake.pop(user_id, None)
            self.sample_exact = False

    def redirect(self, user_id: str) -> None:
        """The id now holds a redirect: out of the census and the index, and in the sample
        as when it was a user (as ``PartitionProcessor.restore`` keeps it)."""
        old = self.key_of.pop(user_id, None)
        if old is not None:
            self._uncount(old)
        self.wake.pop(user_id, None)
        self.sample.offer(user_id)
        self.redirected.add(user_id)

    def _uncount(self, key: Entry) -> None:
        left = self.census[key] - 1
        if left:
            self.census[key] = left
        else:
            del self.census[key]

    def to_plain(self) -> dict[str, Any]:
        """The rows as plain lists and numbers, for a store to keep beside its states
        (:meth:`from_plain` gives them back)."""
        entries = list(self.census)  # each entry a user holds is counted
        # by identity: each distinct entry is one tuple (see set), hashed once here
        number = {id(self._keys[entry]): i for i, entry in enumerate(entries)}
        key_of, wake = self.key_of, self.wake
        users = list(key_of)
        return {
            "sample_size": self.sample.k, "window": self.window,
            "entries": entries, "users": users,
            "entry": [number[id(entry)] for entry in key_of.values()],
            "wake": [wake.get(u) for u in users],
            "redirected": sorted(self.redirected),
            # the sample of every user ever offered; once one was removed, it is rebuilt
            "sample": list(self.sample) if self.sample_exact else None,
        }

    @classmethod
    def from_plain(cls, plain: Mapping[str, Any], settings: Settings) -> Rows:
        """Rows from :meth:`to_plain`'s output (decoded: tuples may arrive as lists), for
        ``settings``' processors. Raises ValueError if they were counted with another
        sample size or window."""
        rows = cls.of(settings)
        if plain["sample_size"] != rows.sample.k or plain["window"] != rows.window:
            raise ValueError("the rows were kept with other settings")
        entries: list[Entry] = [(tuple(key), None if up is None else tuple(up))  # type: ignore[misc]
                                for key, up in plain["entries"]]
        users, numbers = plain["users"], plain["entry"]
        if len(users) != len(numbers) or len(users) != len(plain["wake"]):
            raise ValueError("the rows' lists differ in length")
        rows._keys = {entry: entry for entry in entries}
        rows.key_of = dict(zip(users, [entries[i] for i in numbers], strict=True))
        rows.census = Counter({entries[i]: n for i, n in Counter(numbers).items()})
        rows.wake = {u: w for u, w in zip(users, plain["wake"], strict=True) if w is not None}
        rows.redirected = set(plain["redirected"])
        if plain["sample"] is None:
            rows.sample_exact = False
        else:
            rows.sample.load(plain["sample"])
        return rows

    def restore(self, proc: PartitionProcessor, ctx: PartitionContext | None,
                snapshots: Snapshots | None = None) -> None:
        """``proc.restore(ctx, states, redirected, snapshots)`` for the states and
        redirects these rows follow."""
        proc.restore(ctx, (), (), snapshots)
        # the sample of all users is the sample of their sample
        users: Iterable[str] = (self.sample if self.sample_exact  # type: ignore[assignment]
                                else [*self.key_of, *self.redirected])
        proc.sample.load(users)
        _count(proc, self.census)
        proc.index.load(self.wake.items())
        # entries are shared (``_keys``): tell them apart by identity, not by hashing each
        active = {id(entry) for entry in self.census if _active_buyer(entry)}
        if active:
            wake = self.wake
            proc.dormant.update(u for u, entry in self.key_of.items()
                                if id(entry) in active and u not in wake)
