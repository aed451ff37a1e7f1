"""The faust worker: the Kafka shell around the pure core.

- ``worker``: the faust app, its agent and timers (``build`` wires them), sharing a
  ``runtime.Runtime``; ``watchdog`` checks the broker and ``progress``;
- ``pipeline``: records in, records out, without faust or a broker (tests drive it),
  with ``records`` (what a record holds, ticks, credits, holes), ``table`` (the users
  table as the processors see it), ``offsets`` (how far the table has got through the
  input), ``sink`` (the core's outputs as records to publish) and ``gauges``;
- ``heal``: re-reading what a short table recovery left out;
- ``bootstrap``: writing a replayed history into the table's changelog (``journey
  bootstrap``), and the marker check a worker runs on restore;
- ``fastpath``: leaner faust consumer and monitor classes;
- ``codec``: the users table's value format; ``topics``: topic names and headers;
- ``metrics``: every Prometheus series; ``web``: the HTTP endpoints, which read a worker
  through the ``WorkerView`` protocol;
- ``config``: Kafka client arguments from ``Settings``, for every client journey makes;
- ``logsafe``: what of a user may appear in a log line; ``logrepeats``: Kafka client
  log lines at most once per kind per window.

Importing this package imports nothing else: ``agents.client`` uses ``config`` and
``topics`` without faust.
"""
