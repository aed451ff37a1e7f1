"""journey: per-user lifecycle state, churn warnings and recall triggers from storefront events.

Where things live, and what kind of change goes where:

- ``core/``: the lifecycle rules, pure: no clock, no I/O, no Kafka. The live worker and
  replay run the same core, so a change to what journey computes goes here, with a test
  on ``testing.Harness`` (or on the ``driver`` fixture, which runs it under Replay and
  the worker's pipeline too). ``core/__init__`` maps its modules.
- ``settings``: the one typed ``Settings`` object; a new knob is a field here.
  ``settings_load`` reads it (TOML, environment, secret files) and ``settings_doc``
  renders the configuration reference in docs/.
- ``replay/``: ``journey replay`` offline: the engine, history sources, the HTML report.
- ``synth/``: the synthetic storefront with its ground truth.
- ``testing``: the deterministic harness for the core, and the bounds on a user's state.

The Kafka side (worker, producer, CLI, demo) is the package ``agents``, which may import
``streams``; ``streams`` never imports ``agents``.

Public API: ``from streams import Harness, Replay, Settings``. Each is imported on first
use, so importing ``streams`` stays cheap.
"""

from __future__ import annotations

import os as _os
from typing import TYPE_CHECKING, Any

# The model fits work on small arrays, where BLAS threads only contend with the stream
# loop for the same cores (a fit measured 12x slower with them on a busy 2-core host).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")

__version__ = "0.1.0"

if TYPE_CHECKING:
    from streams.replay.engine import Replay
    from streams.settings import Settings
    from streams.testing import Harness

__all__ = ["Harness", "Replay", "Settings", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Settings":
        from streams.settings import Settings

        return Settings
    if name == "Replay":
        from streams.replay.engine import Replay

        return Replay
    if name == "Harness":
        from streams.testing import Harness

        return Harness
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
