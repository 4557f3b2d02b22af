"""The LFW person split: which people the regression network never saw (its held-out persons).

The split is by person, by a stable hash of the name, so every photo of a person falls on the same
side; training (:mod:`face3d.train.data`) draws only from the other side, and benchmarks that need
people the fitter was not trained on draw from this one."""

from __future__ import annotations

import hashlib


def is_heldout(person: str) -> bool:
    """Whether an LFW person belongs to the held-out split (1 in 10, by a stable hash of the name)."""
    return int(hashlib.md5(person.encode()).hexdigest(), 16) % 10 == 0
