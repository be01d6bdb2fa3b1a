"""Repeated training seeds: which seeds a run uses, where each seed's job lives, and the spread of its figures.

A 1-2 AP gain is the size of the run-to-run spread on AI-TOD, so a figure from one run cannot tell a gain from
noise. With ``--seeds N`` (or ``--seed-list 0,1,2``) every (row, neck) trains once per seed, each run a job of its
own (its own folder, resumed and skipped like any job), and the tables report the mean, the sample standard
deviation and every seed's value.

* The seed sets the job's ``randomness`` (weights' init, augmentation draws) and its sampler's shuffle, so a seed's
  data order is the same on every run and for both necks: the gain HS-FPN - FPN is taken per seed (paired) and
  then averaged. Kernels are not forced deterministic (``deterministic=False``: several CUDA kernels of the
  detectors have no deterministic variant), so GPU runs of one seed may differ in the last bits.
* Seed 0 is the default. In a table, its job keeps the folder name of a single run (``faster_rcnn__hsfpn``), so
  adding seeds later reuses a finished single run; seed ``s > 0`` lives in ``faster_rcnn__hsfpn__s{s}``. ``train``
  gives one job ``WORK_DIR`` itself and several seeds ``WORK_DIR/s{s}`` each, seed 0 included, because
  ``WORK_DIR`` then holds their summary (``train.md``, ``training.png``) beside them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .errors import PipelineError

if TYPE_CHECKING:
    from .runner import JobResult

DEFAULT_SEEDS: tuple[int, ...] = (0,)


class SeedError(PipelineError):
    """``--seeds`` / ``--seed-list`` are invalid (both given, a count below 1, repeated or negative seeds)."""


def resolve_seeds(count: int | None, listed: Sequence[int] | None) -> tuple[int, ...] | None:
    """The seeds the command line asks for: ``--seeds N`` -> ``0..N-1``; ``--seed-list`` as given.

    Args:
        count: ``--seeds`` (``None``: not given).
        listed: ``--seed-list`` (``None``: not given).

    Returns:
        The seeds, or ``None`` when neither option was given (the preset's default, one seed).

    Raises:
        SeedError: Both options, a count below 1, or a list with repeated or negative seeds.
    """
    if count is not None and listed is not None:
        raise SeedError("give --seeds N or --seed-list, not both")
    if count is not None:
        if count < 1:
            raise SeedError(f"--seeds must be >= 1, got {count}")
        return tuple(range(count))
    if listed is None:
        return None
    seeds = tuple(int(s) for s in listed)
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise SeedError(f"--seed-list needs distinct seeds >= 0, got {','.join(map(str, seeds)) or 'nothing'}")
    return seeds


def seed_suffix(seed: int) -> str:
    """The suffix of a seed's job folder: none for seed 0 (a single run's folder), ``__s{seed}`` otherwise."""
    return "" if seed == 0 else f"__s{seed}"


def seed_key(base: str, seed: int, seeds: Sequence[int]) -> str:
    """A job's key in a plan: ``base`` for a single default seed, ``base__s{seed}`` whenever seeds repeat or
    differ from the default (seed 0 included, so every key of a multi-seed plan names its seed)."""
    return base if tuple(seeds) == DEFAULT_SEEDS else f"{base}__s{seed}"


@dataclass(frozen=True)
class Spread:
    """One figure over seeds.

    Args:
        values: ``seed -> value`` of the seeds that have one, in seed order.
        mean: Their mean (``None`` without values).
        std: Their sample standard deviation (n - 1 in the denominator; ``None`` below two values).
    """

    values: dict[int, float] = field(default_factory=dict)
    mean: float | None = None
    std: float | None = None

    @property
    def n(self) -> int:
        """How many seeds have a value."""
        return len(self.values)


def spread(values: Mapping[int, float | None]) -> Spread:
    """Mean and sample standard deviation of the values that are not ``None``.

    Args:
        values: ``seed -> value`` (``None``: the seed has no value: not run, failed, or not measured).

    Returns:
        The spread (not rounded).
    """
    kept = {s: float(v) for s, v in sorted(values.items()) if v is not None}
    if not kept:
        return Spread()
    xs = list(kept.values())
    mean = sum(xs) / len(xs)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
    return Spread(kept, mean, std)


def paired_gain(base: Mapping[int, float | None], other: Mapping[int, float | None]) -> Spread:
    """``other - base`` seed by seed, over the seeds where both have a value, and its spread.

    Pairing removes what the two runs of one seed share (weights' init of the common parts, data order): the
    spread of the differences is the spread of the gain, usually below that of either figure.
    """
    common = sorted({s for s, v in base.items() if v is not None} & {s for s, v in other.items() if v is not None})
    return spread({s: float(other[s]) - float(base[s]) for s in common})  # type: ignore[arg-type]


def format_spread(value: Spread, signed: bool = False) -> str:
    """``"12.3 ± 0.4"`` (``"12.3"`` from one seed, ``"-"`` from none); ``signed`` prints ``+1.2 ± 0.3``."""
    if value.mean is None:
        return "-"
    text = f"{value.mean:+.1f}" if signed else f"{value.mean:.1f}"
    return text if value.std is None else f"{text} ± {value.std:.1f}"


Figures = dict[int, dict[str, float | None]]  # seed -> metrics of one (row, neck)


def seed_figures(results: Sequence[JobResult]) -> Figures:
    """``seed -> metrics`` of the jobs that finished (in this run or before) with figures."""
    return {r.job.seed: r.metrics for r in results if r.status.finished and r.metrics}
