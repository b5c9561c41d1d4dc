"""Tests for util.images, util.files, util.html, util.image_pool, util.visualizer and util.iter_counter."""

from __future__ import annotations

import argparse
import os
import random
import re

import numpy as np
import pytest
import torch
from PIL import Image

from util.files import atomic_write, mkdirs
from util.html import HTML
from util.image_pool import ImagePool
from util.images import label_colormap, save_image, tensor2im, tensor2label
from util.iter_counter import IterationCounter
from util.visualizer import Visualizer


def test_tensor2im_value_mapping_and_shape() -> None:
    tensor = torch.tensor([[[-1.0, 0.0, 1.0, 2.0]], [[1.0, 1.0, 1.0, 1.0]], [[-5.0, 0.99, 0.0, 0.0]]])
    image = tensor2im(tensor)
    assert image.dtype == np.uint8
    assert image.shape == (1, 4, 3)
    assert image[0, :, 0].tolist() == [0, 127, 255, 255]  # truncated as the reference (127.5 -> 127); 2.0 clipped to 255
    assert image[0, :, 1].tolist() == [255, 255, 255, 255]
    assert image[0, 0, 2] == 0  # -5 clipped to 0
    assert image[0, 1, 2] == 253  # 253.725 truncated, not rounded to 254


def test_tensor2im_single_channel_and_batch() -> None:
    tensor = torch.linspace(-1, 1, 6).reshape(1, 1, 2, 3)
    image = tensor2im(tensor)
    assert image.shape == (2, 3, 3)
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    assert image[0, 0, 0] == 0 and image[1, 2, 0] == 255


def test_tensor2im_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        tensor2im(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError):
        tensor2im(torch.zeros(2, 4, 4))


def test_image_pool_swaps_about_half_the_fakes_for_earlier_ones_once_full() -> None:
    random.seed(0)
    torch.manual_seed(0)
    pool = ImagePool(4)
    swapped_out = []
    for step in range(0, 300, 3):  # batches of 3 images, image k filled with the value k
        images = torch.arange(step, step + 3, dtype=torch.float32).reshape(3, 1, 1, 1).expand(3, 3, 2, 2)
        returned = pool.query(images)
        assert returned.shape == images.shape
        values = returned[:, 0, 0, 0].tolist()
        assert all(torch.all(image == value) for image, value in zip(returned, values))
        for index, value in enumerate(values):
            if step + index < 4:
                assert value == step + index  # filling the pool: the fake itself
            elif value != step + index:
                assert value < step + index  # an earlier fake, never a later one
                swapped_out.append(value)
    # Half of the 296 fakes after the first 4 are swapped for an earlier one, and each stored fake leaves
    # the pool once (the new fake takes its place).
    assert 0.35 < len(swapped_out) / 296 < 0.65
    assert len(set(swapped_out)) == len(swapped_out)


def test_image_pool_of_size_0_returns_the_fakes() -> None:
    images = torch.randn(2, 3, 4, 4)
    assert torch.equal(ImagePool(0).query(images), images)


def test_tensor2label_cityscapes() -> None:
    label = torch.tensor([[[7.0, 26.0], [0.0, 23.0]]])
    colour = tensor2label(label, 35)
    assert colour.dtype == np.uint8
    assert colour.shape == (2, 2, 3)
    assert tuple(colour[0, 0]) == (128, 64, 128)
    assert tuple(colour[0, 1]) == (0, 0, 142)
    assert tuple(colour[1, 0]) == (0, 0, 0)
    assert tuple(colour[1, 1]) == (70, 130, 180)


def test_label_colormap_voc_bit_interleaving() -> None:
    cmap = label_colormap(4)
    assert cmap.shape == (4, 3) and cmap.dtype == np.uint8
    assert [tuple(c) for c in cmap] == [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0)]
    # Ids 8 and 9 use the second bit triplet: (64,0,0) and (192,0,0) in the VOC devkit.
    cmap = label_colormap(21)
    assert tuple(cmap[8]) == (64, 0, 0) and tuple(cmap[9]) == (192, 0, 0)
    assert tuple(cmap[15]) == (192, 128, 128)


def test_tensor2label_voc_and_out_of_range() -> None:
    label = torch.tensor([[1, 2, 3, 4, 250, -1]], dtype=torch.int64)
    colour = tensor2label(label, 4)
    assert [tuple(c) for c in colour[0]] == [(128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0)]


def test_tensor2label_one_hot_and_rgb_passthrough() -> None:
    one_hot = torch.zeros(35, 1, 2)
    one_hot[7, 0, 0] = 1
    one_hot[26, 0, 1] = 1
    colour = tensor2label(one_hot, 35)
    assert tuple(colour[0, 0]) == (128, 64, 128) and tuple(colour[0, 1]) == (0, 0, 142)
    rgb = torch.ones(3, 2, 2)
    assert (tensor2label(rgb, 0) == 255).all()


def test_atomic_write_failure_keeps_old_file(tmp_path) -> None:
    path = tmp_path / "ckpt.pth"
    path.write_bytes(b"old contents")

    def failing_writer(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(str(path), failing_writer)
    assert path.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["ckpt.pth"]


def test_atomic_write_replaces_file(tmp_path) -> None:
    path = tmp_path / "ckpt.pth"
    path.write_bytes(b"old")
    atomic_write(str(path), lambda tmp: torch.save({"w": torch.arange(3)}, tmp))
    assert torch.equal(torch.load(path)["w"], torch.arange(3))
    assert os.listdir(tmp_path) == ["ckpt.pth"]


def test_save_image_lossless_png(tmp_path) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    path = tmp_path / "img.png"
    save_image(image, str(path))
    with Image.open(path) as saved:
        assert saved.format == "PNG"
        assert np.array_equal(np.asarray(saved), image)
    gray = rng.integers(0, 256, size=(4, 4), dtype=np.uint8)
    save_image(gray, str(path))
    with Image.open(path) as saved:
        assert np.array_equal(np.asarray(saved), gray)
    assert os.listdir(tmp_path) == ["img.png"]


def test_mkdirs(tmp_path) -> None:
    mkdirs(str(tmp_path / "a" / "b"))
    mkdirs([str(tmp_path / "c"), str(tmp_path / "a" / "b")])
    assert (tmp_path / "a" / "b").is_dir() and (tmp_path / "c").is_dir()


def test_html_refresh_and_rows(tmp_path) -> None:
    page = HTML(str(tmp_path / "web"), "title", refresh=5)
    page.add_header("hdr")
    page.add_image_row("row", [("", "cap")], ["x.png"], [64])
    page.save()
    text = (tmp_path / "web" / "index.html").read_text()
    assert 'http-equiv="refresh"' in text and "<h3>hdr</h3>" in text
    assert 'src="images/x.png"' in text and 'href="images/x.png"' in text and 'width="64"' in text
    assert ">cap</th>" in text and ">row</td>" in text
    assert (tmp_path / "web" / "images").is_dir()
    plain = HTML(str(tmp_path / "web2"), "title")
    plain.save()
    assert "refresh" not in (tmp_path / "web2" / "index.html").read_text()


def test_html_add_markup_is_verbatim(tmp_path) -> None:
    page = HTML(str(tmp_path / "web"), "title")
    page.add_markup('<svg class="plot"><polyline points="1,2 3,4"/></svg>')
    page.add_image_row("row", [("", "cap")], ["x.png"], [8])
    page.save()
    text = (tmp_path / "web" / "index.html").read_text()
    assert '<svg class="plot"><polyline points="1,2 3,4"/></svg>' in text
    assert text.index("<svg") < text.index('src="images/x.png"')


def _opt(tmp_path, **overrides) -> argparse.Namespace:
    opt = argparse.Namespace(
        tf_log=True,
        no_html=False,
        isTrain=True,
        display_winsize=128,
        checkpoints_dir=str(tmp_path),
        name="exp",
    )
    for key, value in overrides.items():
        setattr(opt, key, value)
    return opt


def _visuals(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "input_label": rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8),
        "synthesized_image": rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8),
    }


def test_visualizer_training_outputs(tmp_path) -> None:
    vis = Visualizer(_opt(tmp_path))
    message = vis.print_current_errors(2, 40, {"G_GAN": 1.25, "D_real": 0.5}, 0.1234)
    assert message.startswith("(epoch: 2, iters: 40, time: 0.123) ")
    assert "G_GAN: 1.250" in message and "D_real: 0.500" in message
    vis.plot_current_errors({"G_GAN": 1.25, "D_real": 0.5}, 40)
    visuals = _visuals(0)
    vis.display_current_results(visuals, 2, 40)
    vis.display_current_results(_visuals(1), 3, 80)
    vis.close()

    exp = tmp_path / "exp"
    log = (exp / "loss_log.txt").read_text()
    assert re.match(r"^=+ Training Loss \(.+\) =+\n", log)
    assert "G_GAN: 1.250" in log and "D_real: 0.500" in log

    saved = exp / "web" / "images" / "epoch002_iter0000040_synthesized_image.png"
    with Image.open(saved) as image:
        assert np.array_equal(np.asarray(image), visuals["synthesized_image"])
    page = (exp / "web" / "index.html").read_text()
    assert "images/epoch002_iter0000040_input_label.png" in page
    assert "images/epoch003_iter0000080_synthesized_image.png" in page
    assert 'http-equiv="refresh"' in page
    assert page.index("epoch 3, iteration 80") < page.index("epoch 2, iteration 40")

    events = [f for f in os.listdir(exp / "logs") if f.startswith("events.out.tfevents")]
    assert events and os.path.getsize(exp / "logs" / events[0]) > 0


def test_visualizer_resume_keeps_earlier_iterations(tmp_path) -> None:
    first = Visualizer(_opt(tmp_path, tf_log=False))
    first.display_current_results(_visuals(0), 1, 10)
    first.close()

    second = Visualizer(_opt(tmp_path, tf_log=False))
    second.display_current_results(_visuals(1), 2, 20)
    page = (tmp_path / "exp" / "web" / "index.html").read_text()
    assert "epoch 1, iteration 10" in page and "epoch 2, iteration 20" in page
    assert "images/epoch001_iter0000010_input_label.png" in page
    assert page.index("epoch 2, iteration 20") < page.index("epoch 1, iteration 10")
    assert (tmp_path / "exp" / "loss_log.txt").read_text().count("Training Loss") == 2
    assert not (tmp_path / "exp" / "logs").exists()


def test_visualizer_test_mode_writes_nothing_and_save_images(tmp_path) -> None:
    opt = _opt(tmp_path, isTrain=False, tf_log=False)
    del opt.no_html
    vis = Visualizer(opt)
    assert not (tmp_path / "exp").exists()
    assert vis.print_current_errors(1, 1, {"G_GAN": 1.0}, 0.0).endswith("G_GAN: 1.000 ")

    web_dir = tmp_path / "results" / "exp" / "test_latest"
    webpage = HTML(str(web_dir), "test")
    visuals = _visuals(2)
    vis.save_images(webpage, visuals, "/data/test_label/frankfurt_000000_000294.png")
    webpage.save()
    vis.close()

    for label, image in visuals.items():
        path = web_dir / "images" / f"frankfurt_000000_000294_{label}.png"
        with Image.open(path) as saved:
            assert np.array_equal(np.asarray(saved), image)
    page = (web_dir / "index.html").read_text()
    assert ">frankfurt_000000_000294</td>" in page
    assert "images/frankfurt_000000_000294_input_label.png" in page
    assert "images/frankfurt_000000_000294_synthesized_image.png" in page
    assert 'width="32"' in page  # 8-px images zoomed by a whole factor (at most 4x), within --display_winsize 128
    assert not (tmp_path / "exp").exists()


class Clock:
    """A stand-in for time.time that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_time_per_image_divides_by_the_images_actually_seen(monkeypatch):
    clock = Clock()
    monkeypatch.setattr('util.iter_counter.time.time', clock)
    opt = type(
        'Opt', (), dict(niter=1, niter_decay=0, display_freq=100, print_freq=100, save_latest_freq=1000, batchSize=2, accum_steps=1)
    )()
    counter = IterationCounter(opt, dataset_size=1000)
    counter.record_epoch_start(1)
    for _ in range(3):  # 6 images at 0.5 s each, then the run stops (a final print long before --print_freq)
        counter.record_one_iteration()
        clock.now += 1.0
    assert counter.time_per_iteration() == pytest.approx(0.5)
    while not counter.needs_printing():  # a whole --print_freq interval: 100 images
        counter.record_one_iteration()
        clock.now += 1.0
    counter.record_one_iteration()  # the timer restarts after a print
    clock.now += 1.0
    counter.record_one_iteration()
    clock.now += 1.0
    assert counter.time_per_iteration() == pytest.approx(0.5)
