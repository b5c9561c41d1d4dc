"""Training/test visualisation: loss log, TensorBoard, and HTML pages of result images."""

from __future__ import annotations

import argparse
import os
import re
import time

import numpy as np

from util.html import HTML
from util.util import mkdirs, save_image

# Names written by display_current_results; parsed back on resume.
_WEB_IMAGE_RE = re.compile(r"^epoch(\d+)_iter(\d+)_(.+)\.png$")


def _web_image_name(epoch: int, step: int, label: str) -> str:
    return f"epoch{epoch:03d}_iter{step:07d}_{label}.png"


class Visualizer:
    """Writes losses to loss_log.txt and TensorBoard, and result images to HTML pages."""

    def __init__(self, opt: argparse.Namespace) -> None:
        """Set up the log file, web directory and TensorBoard writer that `opt` asks for (files only when training)."""
        self.tf_log: bool = opt.tf_log
        self.win_size: int = opt.display_winsize
        self.name: str = opt.name
        # Test options have no no_html flag; the training web page is meaningless there.
        self.use_html: bool = opt.isTrain and not getattr(opt, "no_html", True)
        expr_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.web_dir = os.path.join(expr_dir, "web")
        self.img_dir = os.path.join(self.web_dir, "images")
        self.log_name: str | None = None
        self.writer = None
        # (epoch, step) -> labels of every iteration shown on the page, so the
        # page is rebuilt from memory rather than by rescanning the disk.
        self._saved: dict[tuple[int, int], list[str]] = {}
        if not opt.isTrain:
            return
        mkdirs(expr_dir)
        if self.tf_log:
            # Imported lazily so tensorboard is only required when asked for.
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=os.path.join(expr_dir, "logs"))
        if self.use_html:
            mkdirs([self.web_dir, self.img_dir])
            self._load_saved_images()
        self.log_name = os.path.join(expr_dir, "loss_log.txt")
        with open(self.log_name, "a", encoding="utf-8") as log_file:
            log_file.write(f"================ Training Loss ({time.ctime()}) ================\n")

    def _load_saved_images(self) -> None:
        # Images from an earlier run of this experiment stay on the page after a resume.
        for file_name in sorted(os.listdir(self.img_dir)):
            match = _WEB_IMAGE_RE.match(file_name)
            if match:
                key = (int(match.group(1)), int(match.group(2)))
                self._saved.setdefault(key, []).append(match.group(3))

    def display_current_results(self, visuals: dict[str, np.ndarray], epoch: int, step: int) -> None:
        """Send the visuals to TensorBoard and/or save them and rebuild the training web page."""
        if self.writer is not None:
            for label, image in visuals.items():
                self.writer.add_image(label, image, global_step=step, dataformats="HWC" if image.ndim == 3 else "HW")
        if not self.use_html:
            return
        for label, image in visuals.items():
            save_image(image, os.path.join(self.img_dir, _web_image_name(epoch, step, label)))
        self._saved[(epoch, step)] = list(visuals)
        webpage = HTML(self.web_dir, f"Experiment name = {self.name}", refresh=30)
        for (saved_epoch, saved_step), labels in sorted(self._saved.items(), reverse=True):
            webpage.add_header(f"epoch [{saved_epoch}] iter [{saved_step}]")
            names = [_web_image_name(saved_epoch, saved_step, label) for label in labels]
            webpage.add_images(names, labels, names, width=self.win_size)
        webpage.save()

    def plot_current_errors(self, errors: dict[str, float], step: int) -> None:
        """Log each loss as a TensorBoard scalar, when TensorBoard logging is on."""
        if self.writer is None:
            return
        for tag, value in errors.items():
            self.writer.add_scalar(tag, value, step)

    def print_current_errors(self, epoch: int, i: int, errors: dict[str, float], t: float) -> str:
        """Format the losses as one line, append it to loss_log.txt (when training) and return it."""
        message = "(epoch: %d, iters: %d, time: %.3f) " % (epoch, i, t)
        for name, value in errors.items():
            message += "%s: %.3f " % (name, value)
        if self.log_name is not None:
            with open(self.log_name, "a", encoding="utf-8") as log_file:
                log_file.write(message + "\n")
        return message

    def save_images(self, webpage: HTML, visuals: dict[str, np.ndarray], image_path: str) -> None:
        """Save test visuals as images/<name>_<label>.png and add them to `webpage` under a <name> header."""
        image_dir = webpage.get_image_dir()
        name = os.path.splitext(os.path.basename(image_path))[0]
        webpage.add_header(name)
        ims, txts = [], []
        for label, image in visuals.items():
            image_name = f"{name}_{label}.png"
            save_image(image, os.path.join(image_dir, image_name))
            ims.append(image_name)
            txts.append(label)
        webpage.add_images(ims, txts, ims, width=self.win_size)

    def close(self) -> None:
        """Flush and close the TensorBoard writer, if any."""
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
