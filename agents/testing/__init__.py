"""A public harness for tests and benchmarks that run journey for real, on the embedded
broker (the idea of ``bytewax.testing``):

- ``workers``: start ``journey worker`` processes and wait on their /health and /metrics;
- ``kafka_io``: create a test's topics, produce events and ticks, consume what came out;
- ``replay_check``: run ``journey replay`` on the same history, and compare;
- ``chaos``: SIGKILL workers at random points of a known history (the chaos test and
  ``bench/chaos.py``);
- ``overload``: a burst with a poison user into one worker (the overload test and
  ``bench/overload.py``); ``overload_report`` holds what such a run measured.

Nothing here imports pytest except ``Worker.fail``, which reports a failed wait. Core-only
helpers (a deterministic processor, the bounds on one user's state) are in
:mod:`streams.testing`; the pytest fixtures built on these are in ``tests/support/``.
"""
