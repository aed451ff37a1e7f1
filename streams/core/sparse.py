"""Per-user fields that most users never set, kept out of the state object until one is.

Most users of a retail log only buy: they never refund, review, use a coupon, share,
refer, or tell us their consent, time zone or contact details. As slots of ``UserState``
those fields would cost 8 bytes each for every user. ``UserState`` keeps them in
one ``SparseFields`` object instead, made on the first write of a value other than the
default; until then, reading one gives its default. Code reads and writes them as plain
attributes of the state (``state.refunds += 1``), through the ``Sparse`` descriptor.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")


@dataclass(slots=True)
class SparseFields:
    refunded: float = 0.0  # refunds are kept apart from purchases so they may arrive first
    refunds: int = 0
    interested: bool = False
    carted: bool = False
    shares: int = 0
    referrals_sent: int = 0
    referred_converted: int = 0
    referred_by: str | None = None
    referred_at: float | None = None  # when the referral was recorded (signup)
    referral_reported: bool = False  # told the referrer that this user bought
    coupons: int = 0
    reviews: int = 0
    rating_sum: int = 0
    consent_mask: int | None = None  # None: the operator's default consent applies
    utc_offset_min: int | None = None
    # EMAIL_KNOWN | HAS_EMAIL | PHONE_KNOWN | HAS_PHONE from identify traits; 0: never told
    contact_bits: int = 0
    # full refunds that came before their order (order id digest, refund time; see
    # streams/core/apply.py), settled when the order comes; HELD_REFUND_CAP at most
    held_refunds: bytes = b""


SPARSE_NAMES: tuple[str, ...] = tuple(f.name for f in fields(SparseFields))
SPARSE_DEFAULTS: tuple[Any, ...] = tuple(f.default for f in fields(SparseFields))


class Sparse(Generic[T]):
    """An attribute of an object with a ``sparse`` slot (a ``SparseFields`` or None)."""

    __slots__ = ("default", "name")

    def __init__(self, default: T) -> None:
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Sparse[T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        fields_ = obj.sparse
        return self.default if fields_ is None else getattr(fields_, self.name)

    def __set__(self, obj: Any, value: T) -> None:
        fields_ = obj.sparse
        if fields_ is None:
            # the type too: a record must read back as it was written (0 is not 0.0)
            if value == self.default and type(value) is type(self.default):
                return
            fields_ = obj.sparse = SparseFields()
        setattr(fields_, self.name, value)


class HasSparse:
    """The sparse fields as attributes; a subclass provides the ``sparse`` slot."""

    __slots__ = ()
    sparse: SparseFields | None

    refunded = Sparse(0.0)
    refunds = Sparse(0)
    interested = Sparse(False)
    carted = Sparse(False)
    shares = Sparse(0)
    referrals_sent = Sparse(0)
    referred_converted = Sparse(0)
    referred_by: Sparse[str | None] = Sparse(None)
    referred_at: Sparse[float | None] = Sparse(None)
    referral_reported = Sparse(False)
    coupons = Sparse(0)
    reviews = Sparse(0)
    rating_sum = Sparse(0)
    consent_mask: Sparse[int | None] = Sparse(None)
    utc_offset_min: Sparse[int | None] = Sparse(None)
    contact_bits = Sparse(0)
    held_refunds = Sparse(b"")


assert tuple(n for n in vars(HasSparse) if isinstance(vars(HasSparse)[n], Sparse)) \
    == SPARSE_NAMES, "HasSparse declares each SparseFields field, in order"
