"""The pure core: events and an explicit `now` in, new state and outputs out.

Nothing under this package reads a clock, does I/O or imports Kafka. Where things are:

- input: ``decode`` (bytes to an ``event.Event`` or a ``rejection``), with ``limits``,
  ``canonical`` (the user-event contract) and ``segment`` (Segment calls);
- one partition: ``processor.PartitionProcessor`` applies events and fires what falls
  due; its parts are ``clock`` (time, lateness and skew), ``credits`` (referral credits
  held until the clock reaches them), ``refits`` (the re-fit schedule and log),
  ``census``, ``context`` (what a checkpoint persists), ``decisions`` (transitions and
  alerts) and ``snapshot`` (the user-state record); ``timers`` is its deadline index;
- one user: ``state``, ``apply`` (an event on a state), ``lifecycle`` (rhythm and
  stage), ``reach`` (channels, caps, send windows), ``alerts`` (what an alert says);
- the population: ``population`` and ``btyd`` (the model and its fit);
- what comes out: ``outputs`` (``Outputs``, the ``Sink`` protocol and ``drain``),
  ``deadletter``, and ``contracts`` (the schema ids of every record).
"""
