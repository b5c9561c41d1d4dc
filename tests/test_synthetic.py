"""Tests for the built-in synthetic street-scene dataset (data/synthetic.py)."""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from data.synthetic import (  # noqa: E402
    ALLOWED_LABEL_IDS,
    CAR_STYLES,
    make_synthetic_dataset,
    styles_for,
)

W, H, N_TRAIN, N_TEST = 128, 64, 4, 2
FOLDERS = ("train_label", "train_inst", "train_img", "test_label", "test_inst", "test_img")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic"))
    counts = make_synthetic_dataset(root, n_train=N_TRAIN, n_test=N_TEST, width=W, height=H, seed=0)
    return root, counts


def _triples(root):
    """(label_path, inst_path, img_path) for every image of both splits."""
    out = []
    for split, city, n in (("train", "synth", N_TRAIN), ("test", "synthval", N_TEST)):
        for i in range(n):
            stem = f"{city}_{i:06d}_000019"
            out.append(
                (
                    os.path.join(root, f"{split}_label", f"{stem}_gtFine_labelIds.png"),
                    os.path.join(root, f"{split}_inst", f"{stem}_gtFine_instanceIds.png"),
                    os.path.join(root, f"{split}_img", f"{stem}_leftImg8bit.png"),
                )
            )
    return out


def test_folder_counts_and_names(dataset):
    root, counts = dataset
    expected = {f: (N_TRAIN if f.startswith("train") else N_TEST) for f in FOLDERS}
    assert counts == expected
    for folder, n in expected.items():
        files = sorted(os.listdir(os.path.join(root, folder)))
        assert len(files) == n
    for paths in _triples(root):
        for p in paths:
            assert os.path.isfile(p), p
    assert os.path.isfile(os.path.join(root, "styles.json"))


def test_label_maps(dataset):
    root, _ = dataset
    seen = set()
    for label_p, _, _ in _triples(root):
        im = Image.open(label_p)
        assert im.mode == "L"
        assert im.size == (W, H)
        lab = np.array(im)
        values = set(np.unique(lab).tolist())
        assert values <= ALLOWED_LABEL_IDS, values - ALLOWED_LABEL_IDS
        # every scene has sky, road and at least one car
        assert {23, 7, 26} <= values
        assert (lab[0] == 23).any(), "sky should be visible in the top row"
        assert (lab[-1] == 7).any(), "road should reach the bottom row"
        seen |= values
    assert {7, 8, 11, 17, 21, 23, 26} <= seen


def test_instance_maps(dataset):
    root, _ = dataset
    styles = json.load(open(os.path.join(root, "styles.json")))
    for label_p, inst_p, img_p in _triples(root):
        im = Image.open(inst_p)
        assert im.mode in ("I;16", "I")
        inst = np.array(im).astype(np.int64)
        lab = np.array(Image.open(label_p)).astype(np.int64)
        assert inst.shape == lab.shape == (H, W)

        things = np.isin(lab, [11, 24, 26])
        # stuff pixels hold their class id
        assert np.array_equal(inst[~things], lab[~things])
        # every building block / person / car pixel has inst // 1000 == its class
        assert np.array_equal(inst[things] // 1000, lab[things])
        assert (inst[lab == 26] >= 26000).all()

        car_ids = sorted(np.unique(inst[lab == 26]).tolist())
        assert car_ids == [26000 + k for k in range(len(car_ids))]
        assert 1 <= len(car_ids) <= 4
        # styles.json lists exactly the visible cars, with correct pixel counts
        stem = os.path.splitext(os.path.basename(img_p))[0]
        cars = styles[stem]
        assert cars == styles_for(root, label_p) == styles_for(root, inst_p)
        assert sorted(c["instance_id"] for c in cars) == car_ids
        for c in cars:
            assert c["style"] in CAR_STYLES
            assert c["pixels"] == int((inst == c["instance_id"]).sum())


def test_building_blocks_and_wheels_are_in_the_maps(dataset):
    # What a block's paint or a wheel looks like must follow from the maps: every building block is an
    # object of its own with one paint per row (shading runs from the horizon only), and a car's wheels
    # stand below its body, so its lowest rows are two dark runs with road between them.
    root, _ = dataset
    blocks_per_scene, two_wheeled, cars = [], 0, 0
    for label_p, inst_p, img_p in _triples(root):
        lab = np.array(Image.open(label_p)).astype(np.int64)
        inst = np.array(Image.open(inst_p)).astype(np.int64)
        img = np.array(Image.open(img_p)).astype(np.int64)
        blocks = np.unique(inst[lab == 11])
        blocks_per_scene.append(len(blocks))
        for block in blocks:
            for row in np.unique(np.nonzero(inst == block)[0]):
                assert len(np.unique(img[row][inst[row] == block], axis=0)) == 1, (img_p, block, row)
        for car in np.unique(inst[lab == 26]):
            rows, cols = np.nonzero(inst == car)
            box = inst[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
            if cols.min() == 0 or cols.max() == W - 1 or rows.max() == H - 1 or np.any((box >= 26000) & (box != car)):
                continue  # cut by the image border or hidden in part by a nearer car
            cars += 1
            bottom = slice(rows.max() - 1, rows.max() + 1)  # two rows: the wheels may not round alike
            lowest = (inst[bottom] == car).any(axis=0)
            runs = np.count_nonzero(np.diff(lowest.astype(int)) == 1) + int(lowest[0])
            two_wheeled += runs == 2 and bool(np.all(img[bottom][inst[bottom] == car] == (20, 20, 22)))
    assert max(blocks_per_scene) >= 3
    assert cars and two_wheeled == cars, (two_wheeled, cars)


def test_instance_roundtrip_exact(tmp_path):
    arr = np.array([[7, 26000, 26003], [24001, 23, 65535]], np.uint16)
    p = str(tmp_path / "x.png")
    Image.fromarray(arr.astype(np.uint16)).save(p)
    back = np.array(Image.open(p))
    assert np.array_equal(back.astype(np.int64), arr.astype(np.int64))


def test_photos(dataset):
    root, _ = dataset
    for label_p, _, img_p in _triples(root):
        im = Image.open(img_p)
        assert im.mode == "RGB"
        assert im.size == (W, H)
        img = np.array(im).astype(np.float64)
        lab = np.array(Image.open(label_p))
        # sky is bluish and brighter than the road
        sky, road = img[lab == 23].mean(0), img[lab == 7].mean(0)
        assert sky[2] > sky[0]
        assert sky.mean() > road.mean() + 40
        # vegetation (if present) is green-dominant
        if (lab == 21).sum() > 20:
            veg = img[lab == 21].mean(0)
            assert veg[1] > veg[0] and veg[1] > veg[2]


def test_car_styles_are_distinct(dataset):
    root, _ = dataset
    names = list(CAR_STYLES)
    bases = np.array([CAR_STYLES[n] for n in names], np.float64)
    cars = []  # (style, mean colour)
    for _, inst_p, img_p in _triples(root):
        inst = np.array(Image.open(inst_p)).astype(np.int64)
        img = np.array(Image.open(img_p)).astype(np.float64)
        for c in styles_for(root, img_p):
            m = inst == c["instance_id"]
            if m.sum() < 20:
                continue
            cars.append((c["style"], img[m].mean(0)))
            # the car's dominant (median) colour is nearest to its recorded paint style
            med = np.median(img[m], axis=0)
            assert names[int(np.argmin(np.linalg.norm(bases - med, axis=1)))] == c["style"]
    pairs = [(a, b) for a, b in itertools.combinations(cars, 2) if a[0] != b[0]]
    assert pairs, "expected at least two cars with different styles in the dataset"
    for (sa, ma), (sb, mb) in pairs:
        assert np.linalg.norm(ma - mb) > 60, (sa, sb, ma, mb)


def _read_all(root):
    out = {}
    for folder in FOLDERS:
        for name in sorted(os.listdir(os.path.join(root, folder))):
            with open(os.path.join(root, folder, name), "rb") as f:
                out[(folder, name)] = f.read()
    with open(os.path.join(root, "styles.json"), "rb") as f:
        out["styles.json"] = f.read()
    return out


def test_determinism(dataset, tmp_path):
    root, _ = dataset
    again = str(tmp_path / "again")
    make_synthetic_dataset(again, n_train=N_TRAIN, n_test=N_TEST, width=W, height=H, seed=0)
    assert _read_all(root) == _read_all(again)

    other = str(tmp_path / "other")
    make_synthetic_dataset(other, n_train=N_TRAIN, n_test=N_TEST, width=W, height=H, seed=1)
    name = "synth_000000_000019_gtFine_labelIds.png"
    a = np.array(Image.open(os.path.join(root, "train_label", name)))
    b = np.array(Image.open(os.path.join(other, "train_label", name)))
    assert not np.array_equal(a, b)


def test_regenerate_smaller_replaces_old_files(tmp_path):
    root = str(tmp_path / "ds")
    make_synthetic_dataset(root, n_train=3, n_test=2, width=64, height=32)
    counts = make_synthetic_dataset(root, n_train=1, n_test=1, width=64, height=32)
    assert counts == {f: 1 for f in FOLDERS}
    for folder in FOLDERS:
        assert len(os.listdir(os.path.join(root, folder))) == 1


def test_cli(tmp_path):
    root = str(tmp_path / "cli")
    script = os.path.join(REPO_ROOT, "scripts", "make_synthetic_dataset.py")
    res = subprocess.run(
        [sys.executable, script, "--dataroot", root, "--n_train", "2", "--n_test", "1", "--width", "64", "--height", "32", "--seed", "3"],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert os.path.abspath(root) in res.stdout
    assert "train_img" in res.stdout
    assert len(os.listdir(os.path.join(root, "train_img"))) == 2
    assert len(os.listdir(os.path.join(root, "test_label"))) == 1
    img = Image.open(os.path.join(root, "train_img", "synth_000001_000019_leftImg8bit.png"))
    assert img.size == (64, 32) and img.mode == "RGB"
