"""Stage 7: statistics of a built COCO-format dataset, beside the paper's published DOTAmini10 figures.

Reads only ``annotations/{split}.json`` (and ``build.json`` when present) under a dataset root, so it describes any
COCO-format dataset the builder made, whatever its classes. It reports, per split:

* instances and images per class in the layout of the paper's Table 7, with the paper's numbers and the ratio
  ours / paper beside ours;
* the AI-TOD size buckets by s = sqrt(area) of each annotation's ``area`` field;
* the share of instances smaller than 16 and 32 pixels (the paper: 17.3 % and 38.5 %);
* a size histogram, drawn as a figure like the paper's Figure 15.

Notes:
    Size buckets partition the instances, so each boundary belongs to exactly one bucket, the lower one:
    very tiny ``s <= 8``, tiny ``8 < s <= 16``, small ``16 < s <= 32``, medium ``s > 32``. The AI-TOD evaluator's
    area ranges are inclusive at both ends ([0, 8^2], [8^2, 16^2], ...; REFERENCE section 3), which puts an
    object of exactly 8 px in both very tiny and tiny; our partition agrees with those ranges everywhere except
    that it counts such an object once, in the lower bucket. The paper's "smaller than 16 / 32 pixels" shares are
    strict: ``s < 16`` and ``s < 32``, so an object of exactly 16 px is tiny but not "below 16". All comparisons
    are made on ``area`` against the squared limits, which is exact for the integer and half-integer boxes the
    builder writes (no square root rounding).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .build_record import AnyRecord, read_build_record
from .errors import DatasetError
from .io import atomic_write_bytes, json_text, read_json
from .reference import DOTAMINI10_REFERENCE, Reference

# (name, upper limit of s = sqrt(area) in px, inclusive); the last bucket has no upper limit.
SIZE_BUCKETS: tuple[tuple[str, float], ...] = (
    ("very tiny", 8.0),
    ("tiny", 16.0),
    ("small", 32.0),
    ("medium", math.inf),
)
# Strict limits of the "smaller than" shares the paper reports.
SHARE_LIMITS: tuple[int, ...] = (16, 32)
# Histogram of s in 2 px bins up to 128 px, then one overflow bin: fixed edges keep reports comparable.
HISTOGRAM_EDGES: tuple[float, ...] = (*[float(v) for v in range(0, 130, 2)], math.inf)

STATS_JSON = "stats.json"
TABLE7_CSV = "table7.csv"
SIZES_CSV = "size_buckets.csv"
HISTOGRAM_CSV = "size_histogram.csv"
FIGURE_PNG = "size_distribution.png"


@dataclass
class SplitStats:
    """Counts of one split (or of all splits together).

    Attributes:
        split: Split name (the annotation file's stem) or ``"all"``.
        images: Image entries.
        empty_images: Image entries without any annotation.
        augmented_images: Image entries whose ``aug_copy`` is a positive number (augmented copies).
        instances: Annotations per category name, in category id order.
        images_per_class: Images holding at least one annotation of the category.
        augmented_instances: Annotations that lie in augmented copies, per category.
        buckets: Annotations per size bucket name (see :data:`SIZE_BUCKETS`).
        below: Annotations with s strictly below each limit of :data:`SHARE_LIMITS`.
        histogram: Annotations per bin of :data:`HISTOGRAM_EDGES` (len(edges) - 1 bins).
        difficult: Annotations flagged ``difficult``.
        truncated: Annotations flagged ``truncated``.
        scales: Distinct ``scale`` values of the image entries with their image counts, sorted by value.
        ignored: Ignore areas (``iscrowd`` or ``ignore`` set): counted here only, in no other figure.
        size_sum: Sum of s = sqrt(area) over the instances (for the mean size).
    """

    split: str
    images: int = 0
    empty_images: int = 0
    augmented_images: int = 0
    instances: dict[str, int] = field(default_factory=dict)
    images_per_class: dict[str, int] = field(default_factory=dict)
    augmented_instances: dict[str, int] = field(default_factory=dict)
    buckets: dict[str, int] = field(default_factory=lambda: {name: 0 for name, _ in SIZE_BUCKETS})
    below: dict[int, int] = field(default_factory=lambda: {limit: 0 for limit in SHARE_LIMITS})
    histogram: list[int] = field(default_factory=lambda: [0] * (len(HISTOGRAM_EDGES) - 1))
    difficult: int = 0
    truncated: int = 0
    scales: dict[float, int] = field(default_factory=dict)
    ignored: int = 0
    size_sum: float = 0.0

    @property
    def total_instances(self) -> int:
        """All annotations of the split."""
        return sum(self.instances.values())

    def share_below(self, limit: int) -> float | None:
        """Share of annotations with s < ``limit``; ``None`` for a split without annotations."""
        total = self.total_instances
        return self.below[limit] / total if total else None

    @property
    def mean_size(self) -> float | None:
        """Mean s = sqrt(area) of the instances in px; ``None`` for a split without annotations."""
        total = self.total_instances
        return self.size_sum / total if total else None


@dataclass
class DatasetStats:
    """Statistics of a dataset root.

    Attributes:
        dataset_dir: The dataset root.
        classes: Category names in category id order (union over the splits).
        splits: Per-split statistics, ``train`` then ``val`` then any other split in name order.
        overall: The whole dataset (split name ``"all"``): every split, or the record's ``whole`` splits.
        record: The typed ``build.json``, or ``None`` when the dataset has none.
        annotation_files: The annotation files read, relative to ``dataset_dir``.
        reference: The published figures shown beside ours (DOTAmini10's paper unless the record says otherwise).
    """

    dataset_dir: Path
    classes: tuple[str, ...]
    splits: dict[str, SplitStats]
    overall: SplitStats
    record: AnyRecord | None
    annotation_files: tuple[str, ...]
    reference: Reference = DOTAMINI10_REFERENCE


def size_bucket(area: float) -> str:
    """The size bucket of an annotation by s = sqrt(area), each boundary in the lower bucket.

    Args:
        area: The annotation's ``area`` (w * h of its box, in squared pixels).

    Returns:
        ``"very tiny"`` (s <= 8), ``"tiny"`` (8 < s <= 16), ``"small"`` (16 < s <= 32) or ``"medium"`` (s > 32).
    """
    for name, limit in SIZE_BUCKETS:
        if area <= limit * limit:
            return name
    raise ValueError(f"area must be a number >= 0, got {area!r}")  # only NaN gets here


def bucket_ranges() -> dict[str, str]:
    """Each size bucket's range of s = sqrt(area) as text, e.g. ``{"very tiny": "s <= 8", "tiny": "8 < s <= 16"}``."""
    ranges, low = {}, None
    for name, limit in SIZE_BUCKETS:
        if low is None:
            ranges[name] = f"s <= {limit:g}"
        elif math.isinf(limit):
            ranges[name] = f"s > {low:g}"
        else:
            ranges[name] = f"{low:g} < s <= {limit:g}"
        low = limit
    return ranges


def histogram_bin(area: float) -> int:
    """Index of the :data:`HISTOGRAM_EDGES` bin holding s = sqrt(area); bins are [low, high)."""
    s = math.sqrt(area)
    for index in range(len(HISTOGRAM_EDGES) - 1):
        if s < HISTOGRAM_EDGES[index + 1]:
            return index
    return len(HISTOGRAM_EDGES) - 2


def _split_order(name: str) -> tuple[int, str]:
    return ({"train": 0, "val": 1}.get(name, 2), name)


def _entry(section: str, index: int, entry: Any) -> str:
    ident = entry.get("id") if isinstance(entry, dict) else None
    return f"{section}[{index}]" + (f" (id {ident})" if ident is not None else "")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _read_coco(path: Path) -> tuple[dict[int, str], list[dict], list[dict]]:
    """Read and check one COCO file: (category id -> name, images, annotations)."""
    data = read_json(path, what="COCO annotation file", error=DatasetError)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: '{key}' is missing or not a list")
    categories: dict[int, str] = {}
    for index, cat in enumerate(data["categories"]):
        where = f"{path}: {_entry('categories', index, cat)}"
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or not isinstance(cat.get("name"), str):
            raise DatasetError(f"{where}: needs an integer 'id' and a string 'name'")
        if cat["id"] in categories:
            raise DatasetError(f"{where}: category id {cat['id']} is listed twice")
        categories[cat["id"]] = cat["name"]
    seen_images: set[Any] = set()
    for index, image in enumerate(data["images"]):
        where = f"{path}: {_entry('images', index, image)}"
        if not isinstance(image, dict) or "id" not in image:
            raise DatasetError(f"{where}: needs an 'id'")
        if image["id"] in seen_images:
            raise DatasetError(f"{where}: image id {image['id']} is listed twice")
        seen_images.add(image["id"])
    for index, ann in enumerate(data["annotations"]):
        where = f"{path}: {_entry('annotations', index, ann)}"
        if not isinstance(ann, dict):
            raise DatasetError(f"{where}: expected an object")
        if ann.get("category_id") not in categories:
            raise DatasetError(f"{where}: unknown category_id {ann.get('category_id')!r}")
        if ann.get("image_id") not in seen_images:
            raise DatasetError(f"{where}: unknown image_id {ann.get('image_id')!r}")
        if "area" not in ann:
            raise DatasetError(f"{where}: missing 'area'")
        if not _number(ann["area"]) or ann["area"] < 0:
            raise DatasetError(f"{where}: 'area' must be a finite number >= 0, got {ann['area']!r}")
    return categories, data["images"], data["annotations"]


def _count_split(
    name: str, classes: Sequence[str], categories: Mapping[int, str], images: list[dict], annotations: list[dict]
) -> SplitStats:
    stats = SplitStats(
        split=name,
        images=len(images),
        instances={c: 0 for c in classes},
        images_per_class={c: 0 for c in classes},
        augmented_instances={c: 0 for c in classes},
    )
    augmented = {img["id"] for img in images if _number(img.get("aug_copy")) and img["aug_copy"] > 0}
    stats.augmented_images = len(augmented)
    for img in images:
        scale = img.get("scale")
        if _number(scale):
            stats.scales[float(scale)] = stats.scales.get(float(scale), 0) + 1
    stats.scales = dict(sorted(stats.scales.items()))
    class_images: dict[str, set[Any]] = {c: set() for c in classes}
    for ann in annotations:
        if ann.get("iscrowd") or ann.get("ignore"):
            stats.ignored += 1  # an area to ignore, not an object
            continue
        category = categories[ann["category_id"]]
        area = float(ann["area"])
        stats.size_sum += math.sqrt(area)
        stats.instances[category] += 1
        class_images[category].add(ann["image_id"])
        if ann["image_id"] in augmented:
            stats.augmented_instances[category] += 1
        stats.buckets[size_bucket(area)] += 1
        for limit in SHARE_LIMITS:
            if area < limit * limit:
                stats.below[limit] += 1
        stats.histogram[histogram_bin(area)] += 1
        stats.difficult += int(bool(ann.get("difficult", 0)))
        stats.truncated += int(bool(ann.get("truncated", 0)))
    stats.images_per_class = {c: len(ids) for c, ids in class_images.items()}
    objects = {ann["image_id"] for ann in annotations if not (ann.get("iscrowd") or ann.get("ignore"))}
    stats.empty_images = len({img["id"] for img in images} - objects)
    return stats


def _merge(parts: Sequence[SplitStats], classes: Sequence[str]) -> SplitStats:
    total = SplitStats(
        split="all",
        instances={c: 0 for c in classes},
        images_per_class={c: 0 for c in classes},
        augmented_instances={c: 0 for c in classes},
    )
    for part in parts:
        total.images += part.images
        total.empty_images += part.empty_images
        total.augmented_images += part.augmented_images
        total.difficult += part.difficult
        total.truncated += part.truncated
        total.ignored += part.ignored
        total.size_sum += part.size_sum
        for c in classes:
            total.instances[c] += part.instances[c]
            total.images_per_class[c] += part.images_per_class[c]
            total.augmented_instances[c] += part.augmented_instances[c]
        for name in total.buckets:
            total.buckets[name] += part.buckets[name]
        for limit in SHARE_LIMITS:
            total.below[limit] += part.below[limit]
        total.histogram = [a + b for a, b in zip(total.histogram, part.histogram)]
        for scale, count in part.scales.items():
            total.scales[scale] = total.scales.get(scale, 0) + count
    total.scales = dict(sorted(total.scales.items()))
    return total


def compute_stats(dataset_dir: Path) -> DatasetStats:
    """Read a dataset root's COCO files and count everything the report shows.

    Args:
        dataset_dir: Dataset root holding ``annotations/{split}.json`` (and optionally ``build.json``; an AI-TOD
            build's record names its annotation files and their splits).

    Returns:
        The statistics of every split and of the whole dataset.

    Raises:
        DatasetError: When the annotations folder or files are missing or malformed, naming the file and entry
            (an annotation with an unknown category or image, a missing or invalid ``area``, ...), when two
            splits give one category id different names, or when ``build.json`` is malformed.
    """
    dataset_dir = Path(dataset_dir)
    ann_dir = dataset_dir / "annotations"
    if not ann_dir.is_dir():
        raise DatasetError(f"{ann_dir}: annotations folder not found (is {dataset_dir} a built dataset?)")
    record = read_build_record(dataset_dir)
    files = _annotation_files(dataset_dir, record)
    read = {split: (path, *_read_coco(path)) for split, path in files.items()}
    # One category list for the report: the union by id, which must agree on names across the splits.
    id_to_name: dict[int, str] = {}
    for path, categories, _, _ in read.values():
        for cat_id, name in categories.items():
            if id_to_name.setdefault(cat_id, name) != name:
                raise DatasetError(
                    f"{path}: category id {cat_id} is {name!r} here but {id_to_name[cat_id]!r} in another split"
                )
    classes = tuple(id_to_name[i] for i in sorted(id_to_name))
    if len(set(classes)) != len(classes):
        raise DatasetError(f"{ann_dir}: one category name has several ids across the splits: {classes}")
    splits = {
        name: _count_split(name, classes, categories, images, annotations)
        for name, (_, categories, images, annotations) in read.items()
    }
    reference = record.reference() if record is not None else DOTAMINI10_REFERENCE
    whole = [part for name, part in splits.items() if reference.whole is None or name in reference.whole]
    return DatasetStats(
        dataset_dir=dataset_dir,
        classes=classes,
        splits=splits,
        overall=_merge(whole, classes),
        record=record,
        annotation_files=tuple(path.relative_to(dataset_dir).as_posix() for path, *_ in read.values()),
        reference=reference,
    )


def _annotation_files(dataset_dir: Path, record: AnyRecord | None) -> dict[str, Path]:
    """Split name -> annotation file: the record's own list (in its order) when it has one, else
    ``annotations/*.json`` by stem, ``train`` then ``val`` then the rest by name."""
    listed = record.annotation_files() if record is not None else None
    if listed:
        files = {split: dataset_dir / rel for split, rel in listed.items()}
        for path in files.values():
            if not path.is_file():
                raise DatasetError(f"{path}: annotation file named by build.json not found")
        return files
    found = sorted((dataset_dir / "annotations").glob("*.json"), key=lambda p: _split_order(p.stem))
    if not found:
        raise DatasetError(f"{dataset_dir / 'annotations'}: no COCO annotation files (*.json)")
    return {path.stem: path for path in found}


def _ratio(ours: int, paper: int | None) -> float | None:
    # Six significant digits: a small build's ratios to the paper's counts are tiny; fixed places would zero them.
    return float(f"{ours / paper:.6g}") if paper else None


def _share(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def stats_to_dict(stats: DatasetStats) -> dict[str, Any]:
    """A JSON-ready view of the statistics, with the paper's figures beside ours.

    Args:
        stats: Result of :func:`compute_stats`.

    Returns:
        Nested dict with ``classes``, ``size_buckets``, ``histogram_edges`` and, per split and for ``all``, the
        per-class table (ours, paper, ratio, images), size buckets, shares and histogram.
    """

    reference = stats.reference

    def split_view(part: SplitStats) -> dict[str, Any]:
        paper = reference.instances.get(part.split, {})
        paper_total, paper_images = reference.total_instances.get(part.split), reference.images.get(part.split)
        total = part.total_instances
        return {
            "images": part.images,
            "paper_images": paper_images,
            "images_ratio": _ratio(part.images, paper_images),
            "empty_images": part.empty_images,
            "augmented_images": part.augmented_images,
            "instances": total,
            "paper_instances": paper_total,
            "instances_ratio": _ratio(total, paper_total),
            "difficult": part.difficult,
            "truncated": part.truncated,
            "per_class": {
                c: {
                    "instances": part.instances[c],
                    "paper_instances": paper.get(c),
                    "ratio": _ratio(part.instances[c], paper.get(c)),
                    "images": part.images_per_class[c],
                    "augmented_instances": part.augmented_instances[c],
                }
                for c in stats.classes
            },
            "size_buckets": {
                name: {"instances": count, "share": _share(count / total if total else None)}
                for name, count in part.buckets.items()
            },
            "below": {
                str(limit): {
                    "instances": part.below[limit],
                    "share": _share(part.share_below(limit)),
                    "paper_share": reference.share_below.get(limit),
                }
                for limit in SHARE_LIMITS
            },
            "histogram": part.histogram,
            "scales": {repr(k): v for k, v in part.scales.items()},
            **_extra_view(part, reference),
        }

    return {
        "dataset": str(stats.dataset_dir),
        "annotation_files": list(stats.annotation_files),
        "classes": list(stats.classes),
        "size_buckets": bucket_ranges(),
        "share_limits_strict": list(SHARE_LIMITS),
        "histogram_edges": [None if math.isinf(e) else e for e in HISTOGRAM_EDGES],
        "splits": {name: split_view(part) for name, part in stats.splits.items()},
        "all": split_view(stats.overall),
    }


def _extra_view(part: SplitStats, reference: Reference) -> dict[str, Any]:
    # Figures only some datasets have: kept out of a DOTAmini10 report, whose layout is fixed.
    extra: dict[str, Any] = {}
    if part.ignored:
        extra["ignored_areas"] = part.ignored
    if reference is not DOTAMINI10_REFERENCE:
        mean = part.mean_size
        extra["mean_size"] = None if mean is None else round(mean, 4)
        if part.split == "all":
            extra["paper_mean_size"] = reference.mean_size
            extra["paper_classes"] = reference.classes
    return extra


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):  # shortest round-trip text: stable across runs and platforms
        return repr(value)
    return str(value)


def _csv(rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([_fmt(v) for v in row])
    return buffer.getvalue().encode("utf-8")


def table7_rows(stats: DatasetStats) -> list[list[Any]]:
    """Rows of the Table 7 layout: one per class, then ``total`` and ``image``; ours beside the paper's.

    Args:
        stats: Result of :func:`compute_stats`.

    Returns:
        A header row, then per split the columns ``instances``, ``paper``, ``ratio`` and ``images`` (images
        holding the class; for the ``image`` row, all images of the split).
    """
    view = stats_to_dict(stats)["splits"]
    header = ["category"]
    for split in view:
        header += [f"{split}_instances", f"{split}_paper", f"{split}_ratio", f"{split}_images"]
    rows = [header]
    for c in stats.classes:
        row: list[Any] = [c]
        for part in view.values():
            cell = part["per_class"][c]
            row += [cell["instances"], cell["paper_instances"], cell["ratio"], cell["images"]]
        rows.append(row)
    total: list[Any] = ["total"]
    image: list[Any] = ["image"]
    for part in view.values():
        total += [part["instances"], part["paper_instances"], part["instances_ratio"], part["images"]]
        image += [part["images"], part["paper_images"], part["images_ratio"], part["images"]]
    return rows + [total, image]


def render_size_figure(stats: DatasetStats) -> bytes:
    """The size-distribution figure (like the paper's Figure 15) as PNG bytes.

    Left: histogram of s = sqrt(area) per split in 2 px bins up to 128 px (the overflow bin is written in the
    legend), with the AI-TOD bucket limits 8/16/32 marked. Right: share of each size bucket per split.

    Args:
        stats: Result of :func:`compute_stats`.

    Returns:
        PNG bytes; identical for identical statistics (no timestamp or software version in the metadata).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # a bare Figure: no pyplot state shared with the caller

    figure = Figure(figsize=(11, 4.2), dpi=100)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    edges = HISTOGRAM_EDGES[:-1]
    parts = list(stats.splits.values())
    for part in parts:
        total = part.total_instances or 1
        shares = [100.0 * n / total for n in part.histogram[:-1]]
        label = f"{part.split} ({part.total_instances:,} inst.; {part.histogram[-1]:,} > {edges[-1]:.0f} px)"
        left.stairs(shares, edges, label=label, linewidth=1.5)
    for limit in (8, 16, 32):
        left.axvline(limit, color="0.4", linestyle="--", linewidth=0.8)
        left.text(limit, 1.0, f" {limit} px", transform=left.get_xaxis_transform(), va="top", fontsize=8)
    left.set_xlim(0, edges[-1])
    left.set_xlabel("object size sqrt(area) [px]")
    left.set_ylabel("instances per 2 px bin [%]")
    left.set_title(f"Size distribution of {stats.dataset_dir.name or 'the dataset'}")
    left.legend(fontsize=8)
    names = [name for name, _ in SIZE_BUCKETS]
    width = 0.8 / max(1, len(parts))
    for offset, part in enumerate(parts):
        total = part.total_instances or 1
        xs = [i + (offset - (len(parts) - 1) / 2) * width for i in range(len(names))]
        right.bar(xs, [100.0 * part.buckets[n] / total for n in names], width=width, label=part.split)
    right.set_xticks(range(len(names)), ["very tiny\n<=8", "tiny\n8-16", "small\n16-32", "medium\n>32"])
    right.set_ylabel("instances [%]")
    share16, share32 = stats.overall.share_below(16), stats.overall.share_below(32)
    if share16 is not None and share32 is not None:
        published = stats.reference.share_below
        right.set_title(
            "\n".join(f"< {limit} px: {100 * share:.1f}%" + (f" (paper {100 * published[limit]:.1f}%)"
                                                             if limit in published else "")
                      for limit, share in ((16, share16), (32, share32))),
            fontsize=9,
        )
    right.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    # metadata Software=None drops the version string; Agg writes no time stamp, so bytes depend on data only.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def write_stats_report(stats: DatasetStats, out_dir: Path | None = None) -> list[Path]:
    """Write the statistics report: JSON, three CSV tables and the size figure.

    Args:
        stats: Result of :func:`compute_stats`.
        out_dir: Output folder. Defaults to ``<dataset>/stats``.

    Returns:
        Paths written: ``stats.json``, ``table7.csv`` (per class and split: ours, paper, ratio, images),
        ``size_buckets.csv`` (per split: bucket counts and shares, then the strict < 16 / < 32 px shares beside
        the paper's), ``size_histogram.csv`` (per split and 2 px bin of s) and ``size_distribution.png``.
    """
    out_dir = Path(out_dir) if out_dir is not None else stats.dataset_dir / "stats"
    view = stats_to_dict(stats)
    sizes: list[list[Any]] = [["split", "measure", "range_px", "instances", "share", "paper_share"]]
    for name, part in [*view["splits"].items(), ("all", view["all"])]:
        for bucket, span in bucket_ranges().items():
            cell = part["size_buckets"][bucket]
            sizes.append([name, bucket, span, cell["instances"], cell["share"], None])
        for limit in SHARE_LIMITS:
            cell = part["below"][str(limit)]
            sizes.append(
                [name, f"below {limit}", f"s < {limit}", cell["instances"], cell["share"], cell["paper_share"]]
            )
    histogram: list[list[Any]] = [["split", "low_px", "high_px", "instances"]]
    for name, part in [*stats.splits.items(), ("all", stats.overall)]:
        for index, count in enumerate(part.histogram):
            high = HISTOGRAM_EDGES[index + 1]
            histogram.append([name, HISTOGRAM_EDGES[index], None if math.isinf(high) else high, count])
    outputs = [
        (STATS_JSON, json_text(view, indent=2).encode("utf-8")),
        (TABLE7_CSV, _csv(table7_rows(stats))),
        (SIZES_CSV, _csv(sizes)),
        (HISTOGRAM_CSV, _csv(histogram)),
        (FIGURE_PNG, render_size_figure(stats)),
    ]
    written = []
    for name, data in outputs:
        atomic_write_bytes(out_dir / name, data, make_parents=True)
        written.append(out_dir / name)
    return written
