"""The Cityscapes label table (names, labelIds, trainIds, colours, which classes have instances) and lookups from it.

The values are those of the official `cityscapesscripts.helpers.labels` (cityscapesScripts 2.3.0), field for
field; tests/test_cityscapes.py checks that they still are. The table lives here rather than being imported
because the `cityscapesscripts` package pulls matplotlib, pyquaternion, coloredlogs, requests, appdirs and the
obsolete `typing` backport into every install, for one list of 35 tuples; it is a dev dependency only.
"""

from __future__ import annotations

from typing import NamedTuple


class Label(NamedTuple):
    """One row of the official table; fields and their order as in cityscapesscripts.helpers.labels.Label."""

    name: str
    id: int
    trainId: int
    category: str
    categoryId: int
    hasInstances: bool
    ignoreInEval: bool
    color: tuple[int, int, int]


# fmt: off
LABELS: tuple[Label, ...] = (
    #     name                    id  trainId  category        catId  hasInstances  ignoreInEval  color
    Label('unlabeled',             0,    255, 'void',              0, False,        True,         (0, 0, 0)),
    Label('ego vehicle',           1,    255, 'void',              0, False,        True,         (0, 0, 0)),
    Label('rectification border',  2,    255, 'void',              0, False,        True,         (0, 0, 0)),
    Label('out of roi',            3,    255, 'void',              0, False,        True,         (0, 0, 0)),
    Label('static',                4,    255, 'void',              0, False,        True,         (0, 0, 0)),
    Label('dynamic',               5,    255, 'void',              0, False,        True,         (111, 74, 0)),
    Label('ground',                6,    255, 'void',              0, False,        True,         (81, 0, 81)),
    Label('road',                  7,      0, 'flat',              1, False,        False,        (128, 64, 128)),
    Label('sidewalk',              8,      1, 'flat',              1, False,        False,        (244, 35, 232)),
    Label('parking',               9,    255, 'flat',              1, False,        True,         (250, 170, 160)),
    Label('rail track',           10,    255, 'flat',              1, False,        True,         (230, 150, 140)),
    Label('building',             11,      2, 'construction',      2, False,        False,        (70, 70, 70)),
    Label('wall',                 12,      3, 'construction',      2, False,        False,        (102, 102, 156)),
    Label('fence',                13,      4, 'construction',      2, False,        False,        (190, 153, 153)),
    Label('guard rail',           14,    255, 'construction',      2, False,        True,         (180, 165, 180)),
    Label('bridge',               15,    255, 'construction',      2, False,        True,         (150, 100, 100)),
    Label('tunnel',               16,    255, 'construction',      2, False,        True,         (150, 120, 90)),
    Label('pole',                 17,      5, 'object',            3, False,        False,        (153, 153, 153)),
    Label('polegroup',            18,    255, 'object',            3, False,        True,         (153, 153, 153)),
    Label('traffic light',        19,      6, 'object',            3, False,        False,        (250, 170, 30)),
    Label('traffic sign',         20,      7, 'object',            3, False,        False,        (220, 220, 0)),
    Label('vegetation',           21,      8, 'nature',            4, False,        False,        (107, 142, 35)),
    Label('terrain',              22,      9, 'nature',            4, False,        False,        (152, 251, 152)),
    Label('sky',                  23,     10, 'sky',               5, False,        False,        (70, 130, 180)),
    Label('person',               24,     11, 'human',             6, True,         False,        (220, 20, 60)),
    Label('rider',                25,     12, 'human',             6, True,         False,        (255, 0, 0)),
    Label('car',                  26,     13, 'vehicle',           7, True,         False,        (0, 0, 142)),
    Label('truck',                27,     14, 'vehicle',           7, True,         False,        (0, 0, 70)),
    Label('bus',                  28,     15, 'vehicle',           7, True,         False,        (0, 60, 100)),
    Label('caravan',              29,    255, 'vehicle',           7, True,         True,         (0, 0, 90)),
    Label('trailer',              30,    255, 'vehicle',           7, True,         True,         (0, 0, 110)),
    Label('train',                31,     16, 'vehicle',           7, True,         False,        (0, 80, 100)),
    Label('motorcycle',           32,     17, 'vehicle',           7, True,         False,        (0, 0, 230)),
    Label('bicycle',              33,     18, 'vehicle',           7, True,         False,        (119, 11, 32)),
    Label('license plate',        -1,     -1, 'vehicle',           7, False,        True,         (0, 0, 142)),
)
# fmt: on

# pix2pixHD's Cityscapes setting (--label_nc 35): one channel per row of the table. The license plate (official
# id -1) takes the last index, 34, which no labelIds PNG holds.
NUM_LABELS = len(LABELS)
_BY_INDEX = sorted(LABELS, key=lambda label: label.id if label.id >= 0 else NUM_LABELS)

NAMES: tuple[str, ...] = tuple(label.name for label in _BY_INDEX)
"""Class name per label index 0..34 (as check_dataset.py prints them)."""

COLORS: tuple[tuple[int, int, int], ...] = tuple(label.color for label in _BY_INDEX)
"""Colour per label index 0..34: the palette of label maps on the web pages."""

LABEL_IDS: dict[str, int] = {label.name: label.id for label in LABELS if label.id >= 0}
"""labelId of each named class (the values of labelIds PNGs)."""

LABEL_TO_TRAIN_ID: dict[int, int] = {label.id: label.trainId for label in LABELS if 0 <= label.trainId < 255}
"""labelId -> trainId of the 19 classes the benchmark evaluates; every other labelId is ignored."""

TRAIN_CLASSES: tuple[str, ...] = tuple(label.name for label in sorted(LABELS, key=lambda label: label.trainId) if 0 <= label.trainId < 255)
"""Names of the 19 evaluation classes in trainId order (road, sidewalk, ..., bicycle)."""

TRAIN_TO_LABEL_ID: dict[int, int] = {train_id: label_id for label_id, train_id in LABEL_TO_TRAIN_ID.items()}
"""trainId 0..18 -> its labelId: what a network trained on the 19 evaluation classes predicts, as label maps hold it."""
