"""Tests of the core, the pipeline, replay, settings and contracts: no broker, no worker process."""
