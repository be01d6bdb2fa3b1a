"""Tests of dotamini10.classes: the DOTA lists and the DOTAmini10 subset."""

from __future__ import annotations

import pytest

from dotamini10.classes import (
    AUGMENT_CLASSES,
    DOTA_V1_0_CLASSES,
    DOTA_V1_5_CLASSES,
    DOTA_V2_0_CLASSES,
    DOTAMINI10_CLASSES,
    check_class_list,
    detect_dota_version,
)
from dotamini10.errors import DatasetError


def test_lists():
    assert (len(DOTA_V1_0_CLASSES), len(DOTA_V1_5_CLASSES), len(DOTA_V2_0_CLASSES)) == (15, 16, 18)
    assert DOTAMINI10_CLASSES[:4] == ("plane", "small-vehicle", "large-vehicle", "ship")  # Table 7 order
    assert len(DOTAMINI10_CLASSES) == 10 and set(DOTAMINI10_CLASSES) <= set(DOTA_V1_0_CLASSES)
    assert set(AUGMENT_CLASSES) == {"basketball-court", "baseball-diamond", "helicopter"}


def test_version_detection():
    assert detect_dota_version(["plane", "ship"]) == "1.0"
    assert detect_dota_version(["plane", "container-crane"]) == "1.5"
    assert detect_dota_version(["helipad", "container-crane"]) == "2.0"


@pytest.mark.parametrize(("classes", "match"), [((), "empty"), (("plane", "jet"), "'jet'"), (("ship", "ship"), "ship")])
def test_bad_class_lists(classes, match):
    with pytest.raises(DatasetError, match=match):
        check_class_list(classes)


def test_class_list_keeps_order():
    assert check_class_list([" ship", "plane"]) == ("ship", "plane")
