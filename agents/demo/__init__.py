"""``journey demo``: the embedded broker, one worker and a synthetic storefront on a
simulated clock, shown live on a terminal.

- ``run``: ``run_demo``, the session that starts, watches and stops everything, and its
  verdict;
- ``feed``: the storefront publishing events and ticks as simulated time reaches them;
- ``watch``: reading the alerts back and scraping the worker's /metrics;
- ``view``: the terminal screens;
- ``worker``: the demo's settings and its ``journey worker`` child process.

The demo only drives the ordinary worker; a change to what the worker does belongs in
:mod:`agents.kafka` or :mod:`streams.core`.
"""
