"""The HS-FPN paper's published figures for DOTAmini10 (AAAI 2025, appendix A.3, Table 7, section 4.1).

These are the numbers our statistics report puts beside the dataset we build. They were read from the paper's
text: Table 7 lists instances per class for the train set (left) and the validation set (right), with the totals
and image counts; section 4.1 and appendix A.3 give the 410,305 instances overall and the shares of instances
smaller than 16 and 32 pixels (the paper does not say whether these shares are over train + val or one split, nor
by which size measure; AI-TOD, whose metric the paper follows, sizes an object by sqrt(w * h)). Figure 15 is a
"target size distribution map" of DOTAmini10 whose data the text does not give.
"""

from __future__ import annotations

# Table 7's row order (also the builder's COCO category ids 1..10), re-exported beside the numbers it orders.
from .classes import DOTAMINI10_CLASSES  # noqa: F401

# Table 7: instances per class, train (left column) and val (right column).
PAPER_INSTANCES: dict[str, dict[str, int]] = {
    "train": {
        "plane": 28_373,
        "small-vehicle": 84_248,
        "large-vehicle": 57_569,
        "ship": 109_511,
        "tennis-court": 8_512,
        "baseball-diamond": 3_320,
        "swimming-pool": 6_857,
        "basketball-court": 3_130,
        "storage-tank": 20_599,
        "helicopter": 5_967,
    },
    "val": {
        "plane": 7_168,
        "small-vehicle": 16_026,
        "large-vehicle": 13_278,
        "ship": 35_376,
        "tennis-court": 1_654,
        "baseball-diamond": 649,
        "swimming-pool": 1_027,
        "basketball-court": 407,
        "storage-tank": 6_416,
        "helicopter": 218,
    },
}

# Table 7's "total" and "image" rows; the totals equal the column sums above.
PAPER_TOTAL_INSTANCES: dict[str, int] = {"train": 328_086, "val": 82_219}
PAPER_IMAGES: dict[str, int] = {"train": 10_653, "val": 2_733}

# Section 4.1 / A.3: "17.3% of the instances smaller than 16 pixels and 38.5% smaller than 32 pixels".
PAPER_SHARE_BELOW: dict[int, float] = {16: 0.173, 32: 0.385}

# Section 4.1: "This subset contains 410,305 instances" (= 328,086 + 82,219).
PAPER_INSTANCES_ALL = 410_305

PAPER_CITATION = "HS-FPN (AAAI 2025), appendix A.3 and Table 7"
