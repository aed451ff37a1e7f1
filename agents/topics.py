"""Topic names, all under the configured prefix."""

from __future__ import annotations

from dataclasses import dataclass

from streams.settings import Settings

SCHEMA_HEADER = "journey-schema"  # e.g. b"journey.churn-warning/1"
KIND_HEADER = "journey-kind"  # b"tick" or b"feedback" on journey's own records in input topics


@dataclass(frozen=True, slots=True)
class Topics:
    events: str
    repartition: str
    churn_warnings: str
    recall_triggers: str
    transitions: str
    dead_letter: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        p = settings.topic_prefix
        return cls(events=f"{p}events", repartition=f"{p}events-repartition",
                   churn_warnings=f"{p}churn-warnings", recall_triggers=f"{p}recall-triggers",
                   transitions=f"{p}lifecycle-transitions", dead_letter=f"{p}dead-letter")

    def outputs(self) -> tuple[str, ...]:
        return (self.churn_warnings, self.recall_triggers, self.transitions, self.dead_letter)

    def alert_topic(self, alert_type: str) -> str:
        return self.churn_warnings if alert_type == "churn_warning" else self.recall_triggers
