"""journey: per-user lifecycle state, churn warnings and recall triggers from storefront events."""

__version__ = "0.1.0"
