"""The Kafka side of journey, around the pure core in ``streams`` (which it may import;
``streams`` never imports ``agents``). Where things live, and what kind of change goes
where:

- ``kafka/``: the faust worker: app wiring, the batch pipeline, healing, topics, codec,
  metrics and web endpoints. A change to how the worker talks to Kafka goes here; a
  change to what it computes goes to ``streams.core``.
- ``client/``: the producer library a storefront calls (``JourneyProducer``); never
  imports faust.
- ``broker/``: the embedded Tansu broker, and the probe that waits for any broker.
- ``cli/``: the ``journey`` command, one module per command.
- ``demo/``: ``journey demo``: broker, worker and a simulated storefront on a terminal.
- ``testing/``: a harness that runs real workers for tests and benchmarks.
- ``process``: the hook that makes child processes die with journey.

Public API: ``from agents import JourneyProducer``, imported on first use, so importing
``agents`` (as every command does) loads no Kafka client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.client import InvalidEvent, JourneyProducer, Rejected

__all__ = ["InvalidEvent", "JourneyProducer", "Rejected"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import agents.client

        return getattr(agents.client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
