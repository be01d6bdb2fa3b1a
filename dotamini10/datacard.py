"""The data card of a built DOTAmini10: provenance, recipe, statistics and how it differs from the paper.

The card is Markdown generated from two things only: the dataset's typed build record
(:mod:`dotamini10.build_record`, ``build.json`` as the builder wrote it) and the statistics of :mod:`dotamini10.stats`. It is deterministic (no clock, no host names beyond what ``build.json``
records), so a re-run over the same dataset gives the same bytes. :func:`write_report_and_card` is the library side
of ``hsfpn-data stats``: it writes the statistics report and the card in one call.

Every record field is optional (a record written by hand or by an older toolkit may lack some): a missing one is
reported as "not recorded". An AI-TOD build gets its own card (:mod:`dotamini10.aitod.card`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .classes import AUGMENT_CLASSES
from .errors import DatasetError
from .build_record import BuildRecord
from .paper import PAPER_INSTANCES
from .problems import REASONS
from .io import atomic_write_bytes
from .stats import (
    FIGURE_PNG,
    SHARE_LIMITS,
    DatasetStats,
    SplitStats,
    bucket_ranges,
    compute_stats,
    write_stats_report,
)

CARD_NAME = "DOTAmini10.md"
# The rare classes the paper augments (appendix A.3).
AUGMENTED_CLASSES: tuple[str, ...] = AUGMENT_CLASSES


@dataclass(frozen=True)
class StatsRun:
    """What :func:`write_report_and_card` produced.

    Attributes:
        stats: The statistics.
        report_files: Files of the statistics report (JSON, CSV, figure).
        card_files: The data card, in the report folder and, when asked, at the chosen path.
    """

    stats: DatasetStats
    report_files: tuple[Path, ...]
    card_files: tuple[Path, ...]


def fmt_int(value: int | None) -> str:
    """A count with thousands separators, ``-`` for None."""
    return "-" if value is None else f"{value:,}"


def fmt_pct(value: float | None) -> str:
    """A share as a percentage with one decimal, ``-`` for None."""
    return "-" if value is None else f"{100 * value:.1f}%"


def fmt_ratio(ours: int, paper: int | None) -> str:
    """ours / paper to three significant digits, ``-`` without a paper figure."""
    return "-" if not paper else f"{ours / paper:.3g}"


def fmt_value(value: Any) -> str:
    """A build.json value as compact, stable text."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def fmt_count(value: Any) -> str:
    """A count with thousands separators; other values as :func:`fmt_value` writes them."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return fmt_value(value)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list[Any]], align: str | None = None) -> list[str]:
    """Lines of a Markdown table; ``align`` has one ``l`` or ``r`` per column (first left, rest right by default)."""
    align = align or "l" + "r" * (len(header) - 1)
    marks = [":---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def checksum_summary(files: Any) -> str:
    """Summarise a ``{path: sha256}`` map as its file count and one digest over the sorted entries.

    Args:
        files: The map from ``build.json`` (``inputs`` or ``outputs``); anything else is "not recorded".

    Returns:
        E.g. ``"12 files, sha256 of the sorted list 3f2a...c9 (first 16 hex digits)"``.

    Notes:
        The digest is sha256 over the lines ``"{sha256}  {path}\\n"`` sorted by path (the ``sha256sum`` format),
        so two builds with equal files give equal summaries.
    """
    if not isinstance(files, Mapping) or not files:
        return "not recorded"
    listing = "".join(f"{files[path]}  {path}\n" for path in sorted(files))
    digest = hashlib.sha256(listing.encode("utf-8")).hexdigest()
    return f"{len(files):,} files, sha256 of the sorted list `{digest[:16]}`"


def _is_synthetic(source: Any) -> bool:
    if isinstance(source, str):
        return source == "synthetic"
    if isinstance(source, Mapping):
        return any(v == "synthetic" for v in source.values()) or "synthetic" in source
    return False


def _recorded(value: Any) -> Any:
    return "not recorded" if value is None else value


def _provenance(stats: DatasetStats) -> list[str]:
    build = stats.record
    lines = ["## Provenance", ""]
    if build is None:
        return lines + [
            f"`{stats.dataset_dir}` has no `build.json`, so its source, recipe and checksums are unknown; the",
            "statistics below are computed from its COCO annotation files alone.",
            "",
        ]
    source = build.source
    rows: list[list[Any]] = []
    if isinstance(source, Mapping):
        rows += [[f"source: {k}", fmt_value(v)] for k, v in source.items()]
    else:
        rows.append(["source", fmt_value(source) if source is not None else "not recorded"])
    rows += [
        ["toolkit version", fmt_value(_recorded(build.toolkit_version))],
        ["seed", fmt_value(_recorded(build.seed))],
        ["input checksums", checksum_summary(build.inputs)],
        ["output checksums", checksum_summary(build.outputs)],
    ]
    runtime = build.runtime
    if isinstance(runtime, Mapping):
        rows += [[f"runtime: {k}", fmt_value(v)] for k, v in runtime.items()]
    elif runtime is not None:
        rows.append(["runtime", fmt_value(runtime)])
    lines += markdown_table(["item", "value"], rows, "ll") + [""]
    lines += _build_counts(stats, build.counts)
    problems = build.problems
    if isinstance(problems, Mapping):
        if problems:
            lines += ["Input problems found by the builder (details in `problems.jsonl`):", ""]
            lines += markdown_table(["reason", "count"], [[k, fmt_count(v)] for k, v in problems.items()]) + [""]
        else:
            lines += ["The builder found no problem in the input data.", ""]
    return lines


def _build_counts(stats: DatasetStats, counts: Any) -> list[str]:
    """build.json's per-split counts: one table of the plain numbers, one per nested breakdown, and a check of
    the per-class counts against the annotation files."""
    if not isinstance(counts, Mapping) or not counts:
        return []
    splits = {k: v for k, v in counts.items() if isinstance(v, Mapping)}
    if not splits:
        return [f"Build counts: {fmt_value(counts)}", ""]
    plain: list[str] = []
    nested: list[str] = []
    for value in splits.values():
        for key, item in value.items():
            target = nested if isinstance(item, Mapping) else plain
            if key not in target:
                target.append(key)
    lines = ["Build counts per split (from `build.json`):", ""]
    if plain:
        rows = [[split, *[fmt_count(v.get(k, "")) for k in plain]] for split, v in splits.items()]
        lines += markdown_table(["split", *plain], rows) + [""]
    for key in nested:
        if key == "instances_per_class":
            mismatches = [
                f"{split}/{name}: build.json {count}, annotations {stats.splits[split].instances.get(name)}"
                for split, v in splits.items() if split in stats.splits and isinstance(v.get(key), Mapping)
                for name, count in v[key].items() if stats.splits[split].instances.get(name) != count
            ]
            lines += [("Cross-check: build.json's per-class instance counts agree with the annotation files."
                       if not mismatches else
                       "Cross-check FAILED, build.json and the annotation files disagree: " + "; ".join(mismatches)), ""]
            continue
        columns: list[str] = []
        for v in splits.values():
            if isinstance(v.get(key), Mapping):
                columns += [c for c in v[key] if c not in columns]
        rows = [[split, *[fmt_count(v.get(key, {}).get(c, "")) if isinstance(v.get(key), Mapping) else ""
                          for c in columns]] for split, v in splits.items()]
        lines += [f"`{key}`:", ""] + markdown_table(["split", *columns], rows) + [""]
    return lines


def _recipe(stats: DatasetStats) -> list[str]:
    lines = ["## Recipe options", ""]
    options = stats.record.options if stats.record is not None else None
    if not isinstance(options, Mapping):
        return lines + ["Not recorded (no `options` in `build.json`).", ""]
    lines += ["Every output-affecting option of the build, as recorded in `build.json`:", ""]
    return lines + markdown_table(["option", "value"], [[f"`{k}`", fmt_value(v)] for k, v in options.items()], "ll") + [""]


def _paper_value(table: Mapping[str, Any], split: str, key: str | None = None) -> Any:
    if split == "all":
        if key is None:
            return sum(table.values()) if table else None
        return sum(table[s].get(key, 0) for s in table) if key in table.get("train", {}) else None
    return table.get(split) if key is None else table.get(split, {}).get(key)


def _table7(stats: DatasetStats) -> list[str]:
    reference = stats.reference
    parts = list(stats.splits.values())
    header = ["category"]
    for part in parts:
        header += [f"{part.split} (ours)", f"{part.split} (paper)", "ours/paper", f"{part.split} images"]
    rows = []
    for c in stats.classes:
        row: list[Any] = [c]
        for part in parts:
            paper = reference.instances.get(part.split, {}).get(c)
            row += [fmt_int(part.instances[c]), fmt_int(paper), fmt_ratio(part.instances[c], paper),
                    fmt_int(part.images_per_class[c])]
        rows.append(row)
    total: list[Any] = ["**total**"]
    image: list[Any] = ["**image**"]
    for part in parts:
        paper_total = reference.total_instances.get(part.split)
        paper_images = reference.images.get(part.split)
        total += [fmt_int(part.total_instances), fmt_int(paper_total), fmt_ratio(part.total_instances, paper_total), ""]
        image += [fmt_int(part.images), fmt_int(paper_images), fmt_ratio(part.images, paper_images), ""]
    lines = [
        "### Instances per class (layout of the paper's Table 7)",
        "",
        f"Ours beside {reference.citation}. \"images\" counts the images holding the class.",
        "",
    ]
    return lines + markdown_table(header, rows + [total, image]) + [""]


def sizes_section(stats: DatasetStats, figure: str | None) -> list[str]:
    """The size-bucket section: per split and all, with the reference's shares below 16 and 32 px."""
    ranges = bucket_ranges()
    header = ["split", "instances", *[f"{name} ({span} px)" for name, span in ranges.items()],
              *[f"< {limit} px" for limit in SHARE_LIMITS]]
    rows = []
    for part in [*stats.splits.values(), stats.overall]:
        total = part.total_instances
        rows.append([part.split, fmt_int(total),
                     *[f"{fmt_int(part.buckets[n])} ({fmt_pct(part.buckets[n] / total if total else None)})" for n in ranges],
                     *[fmt_pct(part.share_below(limit)) for limit in SHARE_LIMITS]])
    reference = stats.reference
    rows.append(["paper", fmt_int(reference.total_instances.get("all")), *["-" for _ in ranges],
                 *[fmt_pct(reference.share_below.get(limit)) for limit in SHARE_LIMITS]])
    lines = [
        "### Object sizes (AI-TOD buckets)",
        "",
        "s = sqrt(`area`), the COCO `area` being w x h of the horizontal box. A boundary belongs to the lower",
        "bucket (s = 8 is very tiny, s = 16 tiny, s = 32 small); the \"< 16 px\" and \"< 32 px\" shares are strict.",
        "",
    ]
    lines += markdown_table(header, rows) + [""]
    if figure:
        lines += [f"![Size distribution]({figure})", ""]
    return lines


def _other_counts(stats: DatasetStats) -> list[str]:
    lines = ["### Other counts", ""]
    rows = []
    for part in [*stats.splits.values(), stats.overall]:
        aug = sum(part.augmented_instances.values())
        scales = list(part.scales)
        scale_text = "not recorded" if not scales else (
            f"{scales[0]:g}" if len(scales) == 1 else f"{scales[0]:g} to {scales[-1]:g} ({len(scales)} distinct)")
        rows.append([part.split, fmt_int(part.images), fmt_int(part.empty_images), fmt_int(part.augmented_images), fmt_int(aug),
                     fmt_int(part.total_instances - aug), fmt_int(part.truncated), fmt_int(part.difficult), scale_text])
    header = ["split", "images", "without objects", "augmented copies", "instances in copies",
              "instances without copies", "truncated", "difficult", "scale factors"]
    return lines + markdown_table(header, rows) + [""]


def _aug_share_text(part: SplitStats | None, classes: tuple[str, ...]) -> str:
    if part is None:
        return ""
    copies = sum(part.augmented_instances[c] for c in classes if c in part.augmented_instances)
    total = sum(part.instances[c] for c in classes if c in part.instances)
    if not total:
        return ""
    count = "three" if len(classes) == 3 else f"{len(classes)}"
    return (f" In our train split {copies:,} of the {total:,} instances of these {count} classes "
            f"({fmt_pct(copies / total)}) lie in augmented copies.")


def _augmentation(stats: DatasetStats, record: BuildRecord) -> str:
    """The augmentation item: the paper's three classes, and the classes and copies this build recorded."""
    copies = record.option("aug_copies")
    recorded = record.option("aug_classes")
    classes = tuple(recorded) if isinstance(recorded, list) else AUGMENTED_CLASSES
    if copies is None:
        wrote = "The number of copies of this build is not recorded. "
    else:
        plural = "y" if copies == 1 else "ies"
        holding = ("one of them" if set(classes) == set(AUGMENTED_CLASSES) else
                   "one of " + ", ".join(classes) + " (its `aug_classes`, not the paper's three)")
        wrote = f"This build wrote {fmt_value(copies)} extra cop{plural} of every train window holding {holding}. "
    ratios = {c: PAPER_INSTANCES["train"][c] / PAPER_INSTANCES["val"][c] for c in PAPER_INSTANCES["train"]}
    others = [r for c, r in ratios.items() if c not in AUGMENTED_CLASSES]
    return (
        "**Augmentation.** The paper augments basketball-court, baseball-diamond and helicopter with HSV jitter "
        "and flips, without saying how many copies it makes or whether Table 7 counts them. "
        + wrote
        + "The paper's train/val instance ratios hint that its train counts include copies: "
        + ", ".join(f"{c} {ratios[c]:.1f}" for c in AUGMENTED_CLASSES)
        + f", against {min(others):.1f} to {max(others):.1f} for the other seven classes."
        + _aug_share_text(stats.splits.get("train"), classes)
        + " Our tables count copies as instances (the paper's likely convention); the \"Other counts\" table "
        "gives the numbers without them."
    )


def _differences(stats: DatasetStats) -> list[str]:
    record = stats.record if stats.record is not None else BuildRecord()
    source = record.source
    lines = ["## How this build differs from the paper's figures, and why", ""]
    items: list[str] = []
    if _is_synthetic(source):
        items.append(
            "**Source.** This dataset was built from the toolkit's embedded synthetic DOTA-format sample, not from "
            "DOTA. Its counts are orders of magnitude below the paper's and its class mix and sizes are generated, "
            "so the ratios ours/paper only show how far apart they are; none of them is a reproduction check."
        )
    elif stats.record is not None:
        version = source.get("dota_version") if isinstance(source, Mapping) else None
        items.append(
            "**DOTA version.** The paper does not say which DOTA release it used; "
            + (f"the builder recorded DOTA v{version} for this one, judged from the class names in its labels "
               "(v1.5 adds only container-crane to v1.0's classes, so a v1.5 release without that class reads "
               "as v1.0). " if version else "the release of this build is not recorded. ")
            + "DOTA v1.5 re-annotates the v1.0 images with the very small instances (under about 10 px) that "
            "v1.0 leaves out, so the share of tiny objects depends on the release."
        )
    else:
        items.append("**Source.** Unknown: the dataset has no `build.json`.")
    mode = record.option("scale_mode")
    scales = record.option("scale_range") if mode == "random" else record.option("scales")
    items.append(
        "**Scaling.** The paper scales images \"by a factor of 0.5 to 1.0\" but does not say whether each image "
        "gets one random factor or every image is written at a fixed set of factors. "
        + (f"This build used `scale_mode={fmt_value(mode)}`" + (f" with `{fmt_value(scales)}`" if scales is not None else "")
           + ". " if mode is not None else "The scale mode of this build is not recorded. ")
        + "A random factor makes the counts depend on the seed; a fixed set multiplies images and instances by "
        "about the number of factors, and either choice moves objects between size buckets."
    )
    items.append(_augmentation(stats, record))
    problems = record.problems
    n_problems = sum(v for v in problems.values() if isinstance(v, int)) if isinstance(problems, Mapping) else None
    items.append(
        "**Cleaning.** The paper \"cleaned and organized the annotations\" without stating rules. This build "
        "checks every label line and image and reports each problem in `problems.jsonl` ("
        + ", ".join(f"`{reason}`" for reason in REASONS)
        + ")"
        + (f"; {n_problems:,} problems here" if n_problems is not None else "")
        + ". Malformed, unknown-class and degenerate objects are dropped (fate `invalid` in `manifest.jsonl`), "
        "objects reaching outside the image are clipped to it, and difficult objects are kept with their flag in "
        "the COCO `difficult` field. A stricter or looser cleaning changes every count."
    )
    iof = record.option("iof_threshold")
    items.append(
        "**Splitting.** 1,024 x 1,024 windows with stride 768 follow the paper. The paper does not say which split "
        "tool it used: DOTA_devkit keeps an object whose area inside a window is at least 0.7 of its own and "
        "clips it to the window, mmrotate keeps it unclipped. This build "
        + (f"uses the threshold {fmt_value(iof)} " if iof is not None else "does not record its threshold, ")
        + "and clips, so cut objects get smaller boxes and may fall into a smaller size bucket. Whether windows "
        "without objects are kept changes the image counts, and the paper does not say"
        + (f"; this build {'drops' if drop_empty else 'keeps'} empty train windows (val keeps all)."
           if (drop_empty := record.option("drop_empty_train")) is not None else ".")
    )
    items.append(
        "**Size shares.** The paper's 17.3% (< 16 px) and 38.5% (< 32 px) do not say over which split or by which "
        "size measure; we use AI-TOD's sqrt(w x h) of the horizontal box and give each split and all together."
    )
    return lines + [f"- {item}" for item in items] + [""]


def render_data_card(stats: DatasetStats, *, figure: str | None = None, generated_by: str | None = None) -> str:
    """The Markdown data card of a built dataset.

    Args:
        stats: Result of :func:`dotamini10.stats.compute_stats` (its ``record`` is the typed ``build.json``, if any).
        figure: Link to the size-distribution figure, relative to the card; ``None`` leaves the figure out.
        generated_by: The command that produced the card, shown at the top so the card can be regenerated.

    Returns:
        The card text (UTF-8, ending with a newline); equal statistics and arguments give equal text.
    """
    name = stats.dataset_dir.name or str(stats.dataset_dir)
    lines = [
        f"# Data card: {name}",
        "",
        "DOTAmini10 is the ten-class tiny-object subset of DOTA described in the HS-FPN paper (AAAI 2025, "
        "appendix A.3): plane, small-vehicle, large-vehicle, ship, tennis-court, baseball-diamond, "
        "swimming-pool, basketball-court, storage-tank and helicopter, scaled by 0.5 to 1.0, split into "
        "1,024 x 1,024 windows with stride 768, with the three rarest classes augmented.",
        "",
    ]
    if generated_by:
        lines += [f"Generated by `{generated_by}` from `{stats.dataset_dir}`.", ""]
    lines += _provenance(stats)
    lines += _recipe(stats)
    lines += ["## Statistics", "", f"Read from {', '.join(f'`{f}`' for f in stats.annotation_files)}.", ""]
    lines += _table7(stats)
    lines += sizes_section(stats, figure)
    lines += _other_counts(stats)
    lines += _differences(stats)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_report_and_card(
    dataset_dir: Path,
    *,
    out_dir: Path | None = None,
    data_card: Path | None = None,
    generated_by: str | None = None,
) -> StatsRun:
    """Compute the statistics of a dataset, write the report and the data card.

    Args:
        dataset_dir: Dataset root with ``annotations/{split}.json`` (and ideally ``build.json``).
        out_dir: Report folder. Defaults to ``<dataset>/stats``.
        data_card: A second place to write the card (e.g. ``data_cards/DOTAmini10.md``); its figure link is
            relative to that place. Defaults to ``None`` (the card goes only into the report folder, as
            ``DOTAmini10.md``, or ``AI-TOD.md`` for an AI-TOD build).
        generated_by: Command line recorded in the card.

    Returns:
        The statistics and the files written.

    Raises:
        DatasetError: On missing or malformed dataset files (see :func:`dotamini10.stats.compute_stats`), or when
            ``data_card`` is an existing folder.
    """
    stats = compute_stats(dataset_dir)
    out_dir = Path(out_dir) if out_dir is not None else stats.dataset_dir / "stats"
    report = write_stats_report(stats, out_dir)
    render, card_name = render_data_card, CARD_NAME
    if stats.record is not None and stats.record.dataset == "aitod":
        from .aitod.card import CARD_NAME as card_name, render_aitod_card as render
    cards = [out_dir / card_name]
    atomic_write_bytes(cards[0], render(stats, figure=FIGURE_PNG, generated_by=generated_by).encode())
    if data_card is not None:
        data_card = Path(data_card)
        if data_card.is_dir():
            raise DatasetError(f"{data_card}: --data-card must be a file path, not a folder")
        figure = Path(os.path.relpath(out_dir / FIGURE_PNG, data_card.parent)).as_posix()
        data_card.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(data_card, render(stats, figure=figure, generated_by=generated_by).encode())
        cards.append(data_card)
    return StatsRun(stats=stats, report_files=tuple(report), card_files=tuple(cards))
