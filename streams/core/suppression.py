"""Why an alert that was due is not sent: the reasons the core reports in
``Outputs.suppressed``, and the only ones. The worker's ``journey_alerts_suppressed_total``
help text lists them from here, so a new reason cannot go unlisted."""

from __future__ import annotations

from typing import Literal, get_args

SuppressionReason = Literal[
    "no_consent",  # no channel the user consented to
    "no_contact",  # consented, but no address or number for any of those channels
    "recall_cooldown",  # a recall went out within recall_cooldown_days
    "frequency_cap",  # contact_cap alerts within contact_cap_days already
    "historical",  # dated before going live (journey bootstrap): reported, not sent
]
SUPPRESSION_REASONS: tuple[SuppressionReason, ...] = get_args(SuppressionReason)
