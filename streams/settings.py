"""The one typed settings object.

Every knob journey has lives here, with its default and meaning. Values come from,
in increasing precedence: the defaults below, an optional TOML file, and environment
variables named ``JOURNEY_<FIELD>`` in upper case (``JOURNEY_PURCHASE_CYCLE_DAYS=90``):
:mod:`streams.settings_load` reads them. ``docs/configuration.md`` is generated from this
module's field metadata by :mod:`streams.settings_doc` (``journey config --markdown``).

Secrets (fields marked ``secret``) are the exception: they come from the environment
(``JOURNEY_SASL_PASSWORD``) or from a file named by ``JOURNEY_SASL_PASSWORD_FILE`` or by
``sasl_password_file`` in the TOML file, never from the TOML file itself, which tends to
be committed or mounted from a config map. No command takes a secret as a flag.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from streams import settings_load

MASK = "***"
KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _f(default: Any, doc: str, section: str, secret: bool = False) -> Any:
    meta = {"doc": doc, "section": section, "secret": secret}
    if isinstance(default, (list, dict, tuple)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class Settings:
    # --- lifecycle: business rhythm (the operator's, not the code's) ---
    purchase_cycle_days: float = _f(
        30.0, "Typical days between purchases for this business, used until the population "
        "or the user has enough history of its own. A grocer might set 7, a sofa shop 720.",
        "lifecycle")
    own_rhythm_min_orders: int = _f(
        3, "Orders a user needs before their own average purchase gap replaces the population's.",
        "lifecycle")
    decline_after_gaps: float = _f(
        1.5, "A buyer becomes `declining` after this many usual purchase gaps without a purchase.",
        "lifecycle")
    churn_after_gaps: float = _f(
        3.0, "A buyer becomes `churned` after this many usual purchase gaps without a purchase.",
        "lifecycle")
    min_decline_days: float = _f(
        3.0, "Floor on the decline threshold, so a burst of quick orders does not make it tiny.",
        "lifecycle")
    min_churn_days: float = _f(
        14.0, "Floor on the churn threshold.", "lifecycle")
    activity_grace_days: float = _f(
        7.0, "A buyer still browsing within this many days is not declining yet, even if "
        "their purchase is overdue.", "lifecycle")
    new_user_decline_days: float = _f(
        7.0, "A user who never bought becomes `declining` after this many days without activity.",
        "lifecycle")
    new_user_churn_days: float = _f(
        30.0, "A user who never bought becomes `churned` after this many days without activity.",
        "lifecycle")
    mature_min_repeat_purchases: int = _f(
        5, "Repeat purchases (orders after the first) that make a user `mature`.", "lifecycle")
    reactivation_requires: str = _f(
        "activity", "What brings a churned user back: `activity` (any own action) or `purchase`.",
        "lifecycle")
    rigid_demand_max_cv: float = _f(
        0.35, "Coefficient of variation of purchase gaps at or below which a user with enough "
        "orders counts as rigid-demand (buys on a regular cycle).", "lifecycle")
    opinion_leader_min_converted: int = _f(
        2, "Referred users who went on to buy that make the referrer an opinion leader.",
        "lifecycle")
    sharer_min_shares: int = _f(
        2, "Shares, with no purchase of their own, that make a user a sharer.", "lifecycle")

    # --- population model ---
    population_sample_size: int = _f(
        5000, "Users per partition in the deterministic (bottom-k by hash) sample that the "
        "churn model learns from.", "population")
    population_fit_size: int = _f(
        1000, "Of the sample, the users with the smallest hashes that the buy-till-you-die "
        "model and the value tiers are re-fitted on at every refit (a smaller bottom-k "
        "sample).", "population")
    refit_interval_days: float = _f(
        7.0, "How often, in stream time, the population model is re-fitted from the past.",
        "population")
    refit_min_buyers: int = _f(
        50, "Buyers the sample needs before fitted parameters replace the priors.", "population")
    top_tier_share: float = _f(
        0.2, "Share of buyers, by monetary value, in the top value tier.", "population")
    middle_tier_share: float = _f(
        0.3, "Share of buyers in the middle value tier (below the top tier).", "population")

    # --- churn model: learned from the stream (docs/lifecycle.md#the-churn-score) ---
    churn_snapshot_days: float = _f(
        28.0, "Days between snapshots of the sampled buyers that the churn model learns from, "
        "on an epoch-aligned grid; a multiple of `refit_interval_days`.", "churn")
    churn_horizon_days: float = _f(
        84.0, "The churn score is the probability of no purchase within this many days; a "
        "snapshot is labelled this long after it was taken. A multiple of "
        "`churn_snapshot_days`.", "churn")
    churn_min_rows: int = _f(
        500, "Labelled snapshot rows a partition needs before the learned score replaces the "
        "buy-till-you-die score.", "churn")
    churn_min_class: int = _f(
        65, "Of those rows, at least this many users who bought and as many who did not.",
        "churn")
    churn_gone_horizons: float = _f(
        2.0, "How many horizons (`churn_horizon_days`) in a row without a purchase make a "
        "buyer gone, for the label-free churned threshold: it takes each buyer's chance of "
        "that as their churn score to this power (the horizons as independent trials). "
        "From 1 to 12; higher flags fewer, surer buyers.", "churn")
    churn_declining_threshold: float = _f(
        0.0, "Pin the churn score at which a buyer becomes `declining`. 0: set at each fit "
        "from the model's own probabilities (95% of the expected lapsers).", "churn")
    churn_churned_threshold: float = _f(
        0.0, "Pin the churn score at which a buyer becomes `churned`. 0: set at each fit "
        "from the model's own probabilities (80% of the buyers it expects to stay quiet for "
        "`churn_gone_horizons` horizons).", "churn")

    # --- time and input hygiene ---
    allowed_lateness_seconds: float = _f(
        86400.0, "Events older than this behind the partition's clock go to dead letters as "
        "`too_late`; younger out-of-order events are applied normally.", "time")
    max_future_skew_seconds: float = _f(
        300.0, "Events stamped further than this ahead of the receive time go to dead letters "
        "as `future_timestamp`.", "time")
    dedupe_window: int = _f(
        64, "Recent event ids remembered per user for idempotency.", "time")
    max_event_bytes: int = _f(
        65536, "Input messages larger than this go to dead letters as `oversize`.", "time")

    # --- alerts and reach ---
    control_share: float = _f(
        0.10, "Share of alerts flagged `control: true` (by a deterministic hash of the user), "
        "so uplift can be measured against users nobody contacted.", "alerts")
    control_salt: str = _f(
        "journey", "Salt of the control-group hash; change it to draw a new control group.",
        "alerts")
    uplift_window_days: float = _f(
        30.0, "A recalled user who comes back within this many days of the recall counts as "
        "returned when uplift is measured against the control group.", "alerts")
    recall_cooldown_days: float = _f(
        30.0, "At most one recall trigger per user within this many days.", "alerts")
    contact_cap: int = _f(
        2, "At most this many alerts per user within `contact_cap_days`.", "alerts")
    contact_cap_days: float = _f(7.0, "Window of `contact_cap`.", "alerts")
    quiet_hours_start: int = _f(21, "Local hour when quiet hours begin (no sends).", "alerts")
    quiet_hours_end: int = _f(8, "Local hour when quiet hours end.", "alerts")
    send_window_hours: int = _f(2, "Length of the suggested send window.", "alerts")
    default_timezone: str = _f(
        "UTC", "IANA zone of users whose own zone is unknown: their events are stamped in "
        "UTC (`Z`) and name no `timezone` (Segment: `context.timezone`). It sets their "
        "quiet hours, send windows and usual active hour. A numeric offset in a stamp "
        "(`+02:00`) or a named zone is the user's own and wins.", "alerts")
    channels: list[str] = _f(
        ["app_push", "email", "sms", "phone"], "Channels in order of preference (cheapest in "
        "attention first). Known channels: `app_push`, `email`, `sms`, `phone`.", "alerts")
    default_consent: list[str] = _f(
        ["app_push", "email"], "Channels a user is reachable on until they say otherwise "
        "(signup `consent` or `unsubscribe`/`resubscribe` events).", "alerts")
    high_value_channels: list[str] = _f(
        ["phone", "app_push", "sms", "email"], "Channel preference for top-tier users "
        "(personal attention first).", "alerts")

    # --- Kafka and the worker ---
    broker: str = _f("", "Kafka bootstrap servers (host:port,...). Required by `worker`, "
                     "`bootstrap`, `produce` and `tail`; `journey demo` starts an embedded "
                     "broker itself.", "kafka")
    app_id: str = _f("journey", "Kafka consumer group and faust app id.", "kafka")
    topic_prefix: str = _f("journey.", "Prefix of every topic journey reads or writes.", "kafka")
    partitions: int = _f(4, "Partitions of the topics journey creates.", "kafka")
    replication_factor: int = _f(1, "Replication factor of the topics journey creates.",
                                 "kafka")
    store: str = _f("memory://", "Table store: `memory://` or `rocksdb://` (rocksdict).",
                    "kafka")
    standby_replicas: int = _f(0, "Standby table replicas kept by other workers.", "kafka")
    session_timeout_seconds: float = _f(
        6.0, "Consumer group session timeout. Short, because the embedded broker makes "
        "joins wait half of it.", "kafka")
    heartbeat_interval_seconds: float = _f(1.0, "Consumer group heartbeat interval.", "kafka")
    fetch_max_wait_seconds: float = _f(
        0.05, "Longest a fetch waits for new records. Apache Kafka answers as soon as "
        "records arrive, so this only paces idle polling; the embedded broker holds every "
        "fetch this long, so there it adds directly to alert latency.", "kafka")
    tick_interval_seconds: float = _f(
        1.0, "How often the worker stamps wall-clock ticks into its partitions to fire "
        "inactivity timers; 0 when the producer writes ticks itself (a simulated clock).",
        "kafka")
    broker_outage_seconds: float = _f(
        60.0, "A running worker that cannot reach the broker for this long stops with a "
        "non-zero exit instead of waiting silently.", "kafka")
    broker_request_timeout_seconds: float = _f(
        15.0, "Longest the worker waits for the broker to answer one request (a produce, a "
        "fetch of records to re-apply, an admin call) before the client gives up on it and "
        "retries; a batch still unpublished after `broker_outage_seconds` is fatal.",
        "kafka")
    stall_seconds: float = _f(
        120.0, "A worker with input waiting that completes no batch for this long reports "
        "itself unhealthy and exits (code 3) for its supervisor to restart it. Table recovery "
        "does not count: it is watched by its own progress.", "kafka")
    data_dir: str = _f(
        "", "Where the worker keeps its local table files (with `rocksdb://`, the state "
        "itself), one folder per `app_id` inside. Empty: `$XDG_STATE_HOME/journey`, or "
        "`~/.local/state/journey` when that is unset; never the working directory.", "kafka")
    web_host: str = _f("127.0.0.1", "Address of the worker's HTTP endpoints.", "kafka")
    web_port: int = _f(6066, "Port of /metrics, /health and /users/{id}.", "kafka")
    web_advertised_url: str = _f(
        "", "How other workers reach this one's HTTP endpoints (`/users/{id}` is forwarded "
        "to the worker owning the user's partition). Empty: `http://web_host:web_port`, "
        "with this machine's host name when `web_host` listens on every address.", "kafka")
    instance_id: str = _f(
        "", "Static consumer group membership id, stable across restarts (a pod or "
        "service name): a worker that comes back within the session timeout keeps its "
        "partitions without a rebalance. Empty: dynamic membership.", "kafka")
    log_level: str = _f("INFO", "Log level.", "kafka")

    # --- security (docs/security.md). Secrets come from the environment or a file, never
    # from a command-line flag or the config file: see streams.settings_load. ---
    security_protocol: str = _f(
        "PLAINTEXT", "How every Kafka client journey makes connects: PLAINTEXT, SSL, "
        "SASL_PLAINTEXT or SASL_SSL.", "security")
    sasl_mechanism: str = _f(
        "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty means PLAIN) with a SASL protocol.",
        "security")
    sasl_username: str = _f("", "SASL user name (required with a SASL protocol).", "security")
    sasl_password: str = _f("", "SASL password (required with a SASL protocol).", "security",
                            secret=True)
    ssl_cafile: str = _f(
        "", "CA bundle (PEM) the broker's certificate is verified against; empty means the "
        "system's trusted CAs. Host names are always checked.", "security")
    ssl_certfile: str = _f(
        "", "Client certificate (PEM), only for brokers that authenticate clients by "
        "certificate (mutual TLS).", "security")
    ssl_keyfile: str = _f("", "Private key (PEM) of `ssl_certfile`, if not in that file.",
                          "security")
    ssl_key_password: str = _f("", "Password of an encrypted `ssl_keyfile`.", "security",
                               secret=True)
    web_token: str = _f(
        "", "If set, /metrics and /users/{id} require `Authorization: Bearer <token>`; "
        "/health stays open for probes.", "security", secret=True)
    hash_user_ids_in_logs: bool = _f(
        True, "Log a keyed hash of a user id (`user:` and 12 hex digits) instead of the id "
        "itself; the same id gives the same hash within a deployment.", "security")
    log_hash_key: str = _f(
        "", "Key of that hash. Without one the key is derived from `app_id`, which keeps "
        "hashes stable but lets anyone who knows the app id test guesses.", "security",
        secret=True)

    def with_overrides(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def seconds(self, days: float) -> float:
        return days * 86400.0

    @classmethod
    def load(cls, path: str | Path | None = None,
             environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults, then the TOML file (if any), then ``JOURNEY_*`` variables (see
        :mod:`streams.settings_load`)."""
        return settings_load.load(cls, path, environ)

    def validate(self) -> None:
        """Raise ValueError naming every value that journey cannot run with."""
        found = problems(self)
        if found:
            raise ValueError("invalid settings: " + "; ".join(found))

    def data_path(self) -> Path:
        """The worker's folder for local table files (see ``data_dir``)."""
        if self.data_dir:
            base = Path(self.data_dir).expanduser()
        else:
            state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
            base = Path(state) / "journey"
        return base / self.app_id

    def public_dict(self) -> dict[str, Any]:
        """Settings as a dict with secrets masked, for logs and /health."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = MASK if f.metadata.get("secret") and v else v
        return out

    def to_env(self, base: Mapping[str, str] | None = None,
               names: Iterable[str] | None = None) -> dict[str, str]:
        """The environment of a child process that must :meth:`load` these settings:
        ``base`` (e.g. ``os.environ``) without its ``JOURNEY_*`` variables, then
        ``JOURNEY_<NAME>`` for every setting, or for ``names`` only."""
        return settings_load.to_env(self, base, names)

    def __repr__(self) -> str:
        # The generated repr would print passwords into any log or traceback that shows
        # a Settings object; this one masks them like public_dict.
        shown = ", ".join(f"{k}={v!r}" for k, v in self.public_dict().items())
        return f"{type(self).__name__}({shown})"


def secret_names() -> frozenset[str]:
    """Fields that are read only from the environment or a file, and masked when shown."""
    return settings_load.secret_fields(Settings)


def problems(s: Settings) -> list[str]:
    """What is wrong with ``s`` (empty: nothing)."""
    found: list[str] = []
    if not 0.0 <= s.control_share < 1.0:
        found.append("control_share must be in [0, 1)")
    if s.churn_after_gaps <= s.decline_after_gaps:
        found.append("churn_after_gaps must exceed decline_after_gaps")
    if s.new_user_churn_days <= s.new_user_decline_days:
        found.append("new_user_churn_days must exceed new_user_decline_days")
    for h in (s.quiet_hours_start, s.quiet_hours_end):
        if not 0 <= h <= 23:
            found.append("quiet hours must be hours 0-23")
    from streams.core.state import CHANNELS  # the core owns the channel names

    for name in ("channels", "default_consent", "high_value_channels"):
        unknown = [c for c in getattr(s, name) if c not in CHANNELS]
        if unknown:
            found.append(f"{name}: unknown channel {', '.join(map(repr, unknown))} (known: "
                         f"{', '.join(CHANNELS)})")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(s.default_timezone)
    except (ValueError, KeyError, OSError):
        found.append(f"default_timezone {s.default_timezone!r} is not an IANA zone name")
    if s.reactivation_requires not in ("activity", "purchase"):
        found.append("reactivation_requires must be 'activity' or 'purchase'")
    if s.purchase_cycle_days <= 0:
        found.append("purchase_cycle_days must be positive")
    if not 0 < s.top_tier_share < 1 or not 0 <= s.middle_tier_share < 1:
        found.append("tier shares must be in (0, 1)")
    if s.partitions < 1:
        found.append("partitions must be at least 1")
    found += _churn_problems(s)
    found += _security_problems(s)
    positive = ("refit_interval_days", "new_user_decline_days", "decline_after_gaps",
                "churn_snapshot_days", "churn_horizon_days", "uplift_window_days",
                "min_decline_days", "min_churn_days", "contact_cap_days",
                "session_timeout_seconds", "broker_outage_seconds",
                "broker_request_timeout_seconds", "stall_seconds",
                "heartbeat_interval_seconds", "send_window_hours")
    found += [f"{n} must be positive" for n in positive if getattr(s, n) <= 0]
    at_least_one = ("population_sample_size", "population_fit_size", "refit_min_buyers",
                    "dedupe_window", "own_rhythm_min_orders", "max_event_bytes", "contact_cap")
    found += [f"{n} must be at least 1" for n in at_least_one if getattr(s, n) < 1]
    non_negative = ("allowed_lateness_seconds", "max_future_skew_seconds",
                    "activity_grace_days", "recall_cooldown_days", "standby_replicas",
                    "tick_interval_seconds", "fetch_max_wait_seconds")
    found += [f"{n} must not be negative" for n in non_negative if getattr(s, n) < 0]
    return found


def _multiple(value: float, step: float) -> bool:
    return step > 0 and value > 0 and abs(value / step - round(value / step)) < 1e-9


def _churn_problems(s: Settings) -> list[str]:
    found: list[str] = []
    if not _multiple(s.churn_snapshot_days, s.refit_interval_days):
        found.append("churn_snapshot_days must be a multiple of refit_interval_days")
    if not _multiple(s.churn_horizon_days, s.churn_snapshot_days):
        found.append("churn_horizon_days must be a multiple of churn_snapshot_days")
    if not 1.0 <= s.churn_gone_horizons <= 12.0:  # also NaN and infinity
        found.append("churn_gone_horizons must be from 1 to 12")
    pinned = (s.churn_declining_threshold, s.churn_churned_threshold)
    if any(not 0.0 <= t < 1.0 for t in pinned):
        found.append("churn thresholds must be in [0, 1)")
    elif all(pinned) and pinned[0] >= pinned[1]:
        found.append("churn_declining_threshold must be below churn_churned_threshold")
    if s.churn_min_rows < 2 or s.churn_min_class < 1:
        found.append("churn_min_rows must be at least 2 and churn_min_class at least 1")
    return found


def _security_problems(s: Settings) -> list[str]:
    found: list[str] = []
    protocol = s.security_protocol.upper()
    if protocol not in KAFKA_PROTOCOLS:
        found.append(f"security_protocol must be one of {', '.join(KAFKA_PROTOCOLS)}")
    if s.sasl_mechanism and s.sasl_mechanism.upper() not in SASL_MECHANISMS:
        found.append(f"sasl_mechanism must be one of {', '.join(SASL_MECHANISMS)}")
    if protocol.startswith("SASL_") and not (s.sasl_username and s.sasl_password):
        found.append(f"{protocol} needs sasl_username and sasl_password")
    if (s.ssl_keyfile or s.ssl_key_password) and not s.ssl_certfile:
        found.append("ssl_keyfile and ssl_key_password need ssl_certfile")
    return found
