"""The synthetic storefront: users of known archetypes, their events, and the ground truth
of what each of them really did, for tests, the demo and the benchmarks.

``storefront`` holds the model (archetypes, plans, sessions, noise). A change to how
journey reads events belongs in :mod:`streams.core`, not here.
"""

from streams.synth.storefront import (
    DEFAULT_MIX,
    SynthConfig,
    Truth,
    generate,
    generate_truth,
    iter_events,
    to_segment,
    write_jsonl,
)

__all__ = ["DEFAULT_MIX", "SynthConfig", "Truth", "generate", "generate_truth", "iter_events",
           "to_segment", "write_jsonl"]
