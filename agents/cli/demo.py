"""``journey demo``: the embedded broker, one worker and a simulated storefront. The demo
itself is the package :mod:`agents.demo`; ``run_demo`` is its entry."""

from agents.demo.run import run_demo

__all__ = ["run_demo"]
