"""Dataset layouts of the table runners: AI-TOD as released, DOTAmini10 as our builder writes it, and the
synthetic smoke set; each checked on disk and applied to a detector config.

Layouts (paths relative to the data root):

* AI-TOD v1: ``annotations/aitod_trainval_v1.json`` and ``annotations/aitod_test_v1.json``; images in
  ``trainval/images/`` and ``test/images/``. Releases unpacked differently keep the images directly in
  ``trainval/`` and ``test/`` or in ``images/trainval/`` and ``images/test/``: these are found too, and
  every path can be given explicitly.
* DOTAmini10 (``hsfpn-data build-dotamini10``): ``annotations/train.json``, ``annotations/val.json``;
  images in ``images/train/`` and ``images/val/``, each ``file_name`` relative to its split's folder.
* Synthetic smoke set (:mod:`pipelines.synthetic_coco`): the DOTAmini10 convention with a ``test`` split.
* Any COCO-format set (``hsfpn-repro train``: VisDrone, SODA, a user's own): ``annotations/train.json`` and
  ``annotations/val.json`` by default, images found in ``images/{split}/``, ``{split}/`` or ``images/``; every
  path can be given. The classes are the training json's categories in the order it lists them (the order
  MMDetection numbers labels in: label ``i`` is the ``i``-th listed category, whatever the ids), the same
  names in both files.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotamini10.classes import AITOD_CLASSES, DOTAMINI10_CLASSES
from dotamini10.io import read_json

from .errors import PipelineError

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class DataRootError(PipelineError):
    """The data root does not hold the expected dataset layout."""


@dataclass(frozen=True)
class DatasetLayout:
    """Where one dataset's files are, relative to its root.

    Args:
        name: ``"aitod"``, ``"dotamini10"`` or ``"synthetic"``.
        root: The data root (absolute).
        classes: Class names in label order; they must match the json ``categories`` names.
        train_ann: Training annotation json, relative to ``root``.
        train_img: Folder the training ``file_name`` entries are relative to (relative to ``root``,
            ending with ``/``).
        test_ann: Evaluation annotation json (AI-TOD test, DOTAmini10 val).
        test_img: Folder of the evaluation images.
    """

    name: str
    root: Path
    classes: tuple[str, ...]
    train_ann: str
    train_img: str
    test_ann: str
    test_img: str


def _listing(root: Path, limit: int = 12) -> str:
    if not root.is_dir():
        return "nothing (the folder does not exist)"
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    if not entries:
        return "an empty folder"
    more = f", ... ({len(entries) - limit} more)" if len(entries) > limit else ""
    return ", ".join(entries[:limit]) + more


def _has_images(folder: Path) -> bool:
    if not folder.is_dir():
        return False
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())


def _pick_image_dir(root: Path, given: str | None, candidates: tuple[str, ...], what: str) -> str:
    if given is not None:
        if not (root / given).is_dir():
            raise DataRootError(f"{what}: image folder {root / given} does not exist")
        return given.rstrip("/") + "/"
    for cand in candidates:
        if _has_images(root / cand):
            return cand.rstrip("/") + "/"
    expected = " or ".join(f"{c}/" for c in candidates)
    raise DataRootError(
        f"{what}: expected image files in {expected} under {root}; found {_listing(root)}"
    )


def _require_file(root: Path, rel: str, what: str) -> None:
    path = root / rel
    if not path.is_file():
        parent = path.parent
        raise DataRootError(
            f"{what}: expected {rel} under data root {root}; {parent.relative_to(root) if parent != root else '.'}"
            f"/ holds {_listing(parent)}"
        )


def quick_categories(path: Path, window: int = 1 << 20) -> list[str] | None:
    """Category names of a COCO json in the order it lists them, read from its first and last ``window`` bytes.

    AI-TOD's jsons are hundreds of MB; their ``categories`` list sits at one end, so the check costs a
    couple of reads instead of a full parse.

    Returns:
        The names, or ``None`` when ``categories`` is not within either window.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        chunks = [fh.read(window)]
        if size > window:
            fh.seek(max(size - window, window))
            chunks.append(fh.read())
    decoder = json.JSONDecoder()
    for chunk in chunks:
        text = chunk.decode("utf-8", errors="replace")
        at = text.find('"categories"')
        while at >= 0:
            start = text.find("[", at)
            try:
                cats, _ = decoder.raw_decode(text, start)
                return [c["name"] for c in cats]
            except (ValueError, KeyError, TypeError):
                at = text.find('"categories"', at + 1)
    return None


def check_classes(path: Path, classes: tuple[str, ...]) -> None:
    """Fail when a COCO json's category names differ from ``classes`` (mmdet would drop the others silently).

    Raises:
        DataRootError: The names differ; the message lists both.
    """
    found = quick_categories(path)
    if found is not None and sorted(found) != sorted(classes):
        raise DataRootError(f"{path}: categories {found} are not the expected classes {list(classes)}")


def aitod_layout(
    root: Path,
    *,
    train_ann: str = "annotations/aitod_trainval_v1.json",
    test_ann: str = "annotations/aitod_test_v1.json",
    train_images: str | None = None,
    test_images: str | None = None,
) -> DatasetLayout:
    """Check an AI-TOD v1 root and return its layout.

    Args:
        root: The AI-TOD root.
        train_ann: Train-val annotation json relative to ``root``. Defaults to the release's name.
        test_ann: Test annotation json relative to ``root``.
        train_images: Train-val image folder relative to ``root``; ``None`` tries ``trainval/images``,
            ``trainval``, ``images/trainval`` in order.
        test_images: Test image folder; ``None`` tries the same three places for ``test``.

    Returns:
        The layout, with the image folders found.

    Raises:
        DataRootError: A file or folder is missing; the message says what was expected and lists what
            the folder holds; a json's categories are not AI-TOD's eight classes.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise DataRootError(f"AI-TOD data root {root} does not exist")
    _require_file(root, train_ann, "AI-TOD")
    _require_file(root, test_ann, "AI-TOD")
    train_img = _pick_image_dir(
        root, train_images, ("trainval/images", "trainval", "images/trainval"), "AI-TOD train-val images"
    )
    test_img = _pick_image_dir(root, test_images, ("test/images", "test", "images/test"), "AI-TOD test images")
    for ann in (train_ann, test_ann):
        check_classes(root / ann, AITOD_CLASSES)
    return DatasetLayout("aitod", root, AITOD_CLASSES, train_ann, train_img, test_ann, test_img)


def coco_split_layout(
    root: Path, name: str, classes: tuple[str, ...], *, train_split: str, test_split: str
) -> DatasetLayout:
    """Check a root in the DOTAmini10 convention (``annotations/{split}.json``, images in ``images/{split}/``).

    Args:
        root: Dataset root.
        name: Layout name (``"dotamini10"`` or ``"synthetic"``).
        classes: Class names in label order.
        train_split: Training split name (``"train"``).
        test_split: Evaluation split name (``"val"`` for DOTAmini10, ``"test"`` for the synthetic set).

    Returns:
        The layout.

    Raises:
        DataRootError: An annotation file or the image folder is missing.
    """
    root = Path(root).resolve()
    label = "DOTAmini10" if name == "dotamini10" else name
    if not root.is_dir():
        raise DataRootError(f"{label} data root {root} does not exist")
    for split in (train_split, test_split):
        _require_file(root, f"annotations/{split}.json", label)
    for split in (train_split, test_split):
        if not (root / "images" / split).is_dir():
            raise DataRootError(
                f"{label}: expected an images/{split}/ folder under {root}; images/ holds {_listing(root / 'images')}"
            )
    return DatasetLayout(
        name,
        root,
        classes,
        f"annotations/{train_split}.json",
        f"images/{train_split}/",
        f"annotations/{test_split}.json",
        f"images/{test_split}/",
    )


def dotamini10_layout(root: Path) -> DatasetLayout:
    """Check a DOTAmini10 root written by ``hsfpn-data build-dotamini10`` (train / val splits).

    The class names come from ``annotations/val.json`` (``categories`` in id order), since the builder
    can select other classes than the paper's ten.

    Raises:
        DataRootError: A file is missing, or the json has no usable ``categories``.
    """
    layout = coco_split_layout(root, "dotamini10", DOTAMINI10_CLASSES, train_split="train", test_split="val")
    path = layout.root / layout.test_ann
    try:
        categories = json.loads(path.read_text(encoding="utf-8"))["categories"]
        classes = tuple(c["name"] for c in sorted(categories, key=lambda c: c["id"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataRootError(f"{path}: cannot read the COCO categories ({type(exc).__name__}: {exc})") from None
    if not classes:
        raise DataRootError(f"{path}: 'categories' is empty")
    return dataclasses.replace(layout, classes=classes)


def coco_categories(path: Path) -> tuple[str, ...]:
    """Category names of a COCO json in the order it lists them (read from either end first, else parsed whole):
    MMDetection's label order (its ``CocoDataset.cat_ids`` follow the list, not the ids).

    Raises:
        DataRootError: The file is unreadable or not JSON, has no ``categories``, or repeats a name.
    """
    names = quick_categories(path)
    if names is None:
        record = read_json(path, what="COCO annotations", error=DataRootError)
        try:
            names = [c["name"] for c in record["categories"]]
        except (KeyError, TypeError) as exc:
            raise DataRootError(f"{path}: no usable 'categories' list ({type(exc).__name__}: {exc})") from None
    if not names:
        raise DataRootError(f"{path}: 'categories' is empty")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataRootError(f"{path}: category names {repeated} appear more than once")
    return tuple(names)


def coco_layout(
    root: Path,
    *,
    train_ann: str | None = None,
    val_ann: str | None = None,
    train_images: str | None = None,
    val_images: str | None = None,
) -> DatasetLayout:
    """Check a COCO-format dataset for training on one's own data and return its layout.

    Args:
        root: Dataset root.
        train_ann: Training json relative to ``root``. Defaults to ``annotations/train.json``.
        val_ann: Evaluation json relative to ``root``. Defaults to ``annotations/val.json``.
        train_images: Folder the training ``file_name`` entries are relative to; ``None`` tries
            ``images/train``, ``train`` and ``images`` in order.
        val_images: The same for the evaluation images (``images/val``, ``val``, ``images``).

    Returns:
        The layout (name ``"coco"``), its classes those of the training json, in its order (labels' order).

    Raises:
        DataRootError: A file or folder is missing, a json has no usable categories, or the training and
            evaluation jsons name different classes.
    """
    root = Path(root).resolve()
    if not root.is_dir():
        raise DataRootError(f"COCO data root {root} does not exist")
    train_ann = train_ann or "annotations/train.json"
    val_ann = val_ann or "annotations/val.json"
    for ann in (train_ann, val_ann):
        _require_file(root, ann, "COCO dataset")
    train_img = _pick_image_dir(root, train_images, ("images/train", "train", "images"), "training images")
    val_img = _pick_image_dir(root, val_images, ("images/val", "val", "images"), "evaluation images")
    classes = coco_categories(root / train_ann)
    _same_classes(classes, coco_categories(root / val_ann), train_ann, val_ann)
    return DatasetLayout("coco", root, classes, train_ann, train_img, val_ann, val_img)


def _same_classes(train: Sequence[str], val: Sequence[str], train_ann: str, val_ann: str) -> None:
    # mmdet maps category ids by name: the same names in another id order are the same classes.
    if set(train) != set(val):
        only_train = sorted(set(train) - set(val))
        only_val = sorted(set(val) - set(train))
        raise DataRootError(
            f"the training and evaluation jsons name different classes: {train_ann} only has {only_train}, "
            f"{val_ann} only has {only_val}"
        )


def _walk(node: Any, key: str, visit: Any, skip: tuple[str, ...] = ()) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k in skip:
                continue
            if k == key:
                visit(node)
            _walk(v, key, visit, skip)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _walk(item, key, visit, skip)


def apply_dataset(cfg: Any, layout: DatasetLayout) -> None:
    """Point a detector config (mmengine ``Config``, changed in place) at a dataset layout.

    Sets the data root, annotation files, image folders and class names of the train / val / test
    loaders, the evaluator's annotation file, and ``num_classes`` of every head except the RPN (which
    is class-agnostic).

    Args:
        cfg: The config, with the ``_base_/datasets/aitod_detection.py`` structure.
        layout: Where the dataset lies.
    """
    metainfo = dict(classes=tuple(layout.classes))
    root = str(layout.root) + "/"
    train = cfg.train_dataloader.dataset
    train.data_root = root
    train.ann_file = layout.train_ann
    train.data_prefix = dict(img=layout.train_img)
    train.metainfo = metainfo
    for loader in ("val_dataloader", "test_dataloader"):
        ds = cfg[loader].dataset
        ds.data_root = root
        ds.ann_file = layout.test_ann
        ds.data_prefix = dict(img=layout.test_img)
        ds.metainfo = metainfo
    for evaluator in ("val_evaluator", "test_evaluator"):
        cfg[evaluator].ann_file = str(layout.root / layout.test_ann)

    def set_classes(node: dict) -> None:
        node["num_classes"] = len(layout.classes)

    # RPN heads are binary (object / background) whatever the dataset: leave them out.
    _walk(cfg.model, "num_classes", set_classes, skip=("rpn_head",))
