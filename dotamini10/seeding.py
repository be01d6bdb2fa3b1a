"""Random generators keyed by what they are for, never by the order work happens in.

Notes:
    Every random draw of the build (the scale factor of an image, the augmentation of a window copy) comes
    from ``rng_for(seed, *keys)``, so the result does not depend on the number of workers, the order units
    finish in or whether the build was resumed.
"""

from __future__ import annotations

import hashlib

import numpy as np


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A generator determined by ``seed`` and ``keys`` alone.

    Args:
        seed: The build seed.
        *keys: Anything with a stable ``str`` (image name, split, window origin, copy index).

    Returns:
        A fresh ``numpy.random.Generator`` (PCG64).
    """
    # sha256, not hash(): Python salts str hashes per process.
    digest = hashlib.sha256("\x1f".join(str(k) for k in keys).encode("utf-8")).digest()
    words = np.frombuffer(digest, dtype="<u4").tolist()
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *words]))
