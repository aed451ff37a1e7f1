"""The pure core: events and an explicit `now` in, new state and outputs out.

Nothing under this package reads a clock, does I/O or imports Kafka.
"""
