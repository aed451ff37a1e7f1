"""The wire contracts journey reads and writes, by name: one table of schema ids.

Each contract is a JSON Schema file in ``schemas/``, ``<name>.v<version>.json``, whose
records carry the id ``journey.<name>/<version>`` in their ``schema`` field (and in the
``journey-schema`` header on Kafka). Code names a contract from this table, never by a
literal id; ``tests/unit/test_schemas.py`` holds the table against the files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final


@dataclass(frozen=True, slots=True)
class Contract:
    name: str  # the schema file's name in schemas/, without version
    version: int
    id: str = field(init=False)  # what its records carry in their ``schema`` field

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", f"journey.{self.name}/{self.version}")

    @property
    def file_name(self) -> str:
        return f"{self.name}.v{self.version}.json"


USER_EVENT: Final = Contract("user-event", 1)
SEGMENT_TRACK: Final = Contract("segment-track", 1)  # an input without a schema field
SEGMENT_IDENTIFY: Final = Contract("segment-identify", 1)  # (nor have these)
SEGMENT_ALIAS: Final = Contract("segment-alias", 1)
SEGMENT_GROUP: Final = Contract("segment-group", 1)
SEGMENT_CALLS: Final = (SEGMENT_TRACK, SEGMENT_IDENTIFY, SEGMENT_ALIAS, SEGMENT_GROUP)
CHURN_WARNING: Final = Contract("churn-warning", 1)
RECALL_TRIGGER: Final = Contract("recall-trigger", 1)
LIFECYCLE_TRANSITION: Final = Contract("lifecycle-transition", 1)
DEAD_LETTER: Final = Contract("dead-letter", 1)
USER_STATE: Final = Contract("user-state", 1)

CONTRACTS: Final[tuple[Contract, ...]] = (USER_EVENT, *SEGMENT_CALLS, CHURN_WARNING,
                                          RECALL_TRIGGER, LIFECYCLE_TRANSITION, DEAD_LETTER,
                                          USER_STATE)
