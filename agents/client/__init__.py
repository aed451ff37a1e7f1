"""The producer library a storefront calls to publish user events to journey.

It validates each event with the worker's own decoder before sending, speaks kafka-python,
and never imports faust. See docs/producing.md.
"""

from agents.client.producer import InvalidEvent, JourneyProducer, Rejected, SendReport

__all__ = ["InvalidEvent", "JourneyProducer", "Rejected", "SendReport"]
