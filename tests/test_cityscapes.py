"""util/cityscapes.py holds the official Cityscapes label table, and every Cityscapes lookup of the project comes from it."""

import cityscapesscripts.helpers.labels as official  # the `dev` install group

from data import synthetic
from util import cityscapes, metrics
from util.images import label_colormap


def test_table_is_the_official_one_field_for_field():
    assert cityscapes.Label._fields == official.Label._fields
    assert [tuple(label) for label in cityscapes.LABELS] == [tuple(label) for label in official.labels]


def test_palette_names_train_ids_and_synthetic_ids_come_from_the_official_table():
    palette = label_colormap(cityscapes.NUM_LABELS)
    for label in official.labels:
        index = label.id if label.id >= 0 else cityscapes.NUM_LABELS - 1  # --label_nc 35: the license plate is 34
        assert tuple(palette[index].tolist()) == label.color, label.name
        assert cityscapes.NAMES[index] == label.name
    assert metrics.LABEL_TO_TRAIN_ID == {label.id: label.trainId for label in official.labels if label.trainId not in (-1, 255)}
    assert metrics.CITYSCAPES_CLASSES == tuple(official.trainId2label[train_id].name for train_id in range(19))
    assert all(synthetic.LABEL_IDS[name] == official.name2label[name].id for name in synthetic.LABEL_IDS)
