"""The synthetic storefront: users of known archetypes, their events, and the ground truth
of what each of them really did, for tests, the demo and the benchmarks.

``plan`` holds who comes when (archetypes, plans, truth), ``storefront`` the clicks of
each session and the public API, ``noise`` what real producers get wrong. A change to how
journey reads events belongs in :mod:`streams.core`, not here.
"""

from streams.synth.noise import to_segment
from streams.synth.plan import DEFAULT_MIX, SynthConfig, Truth
from streams.synth.storefront import generate, generate_truth, iter_events, write_jsonl

__all__ = ["DEFAULT_MIX", "SynthConfig", "Truth", "generate", "generate_truth", "iter_events",
           "to_segment", "write_jsonl"]
