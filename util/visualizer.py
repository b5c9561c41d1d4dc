"""Training/test visualisation: loss log, TensorBoard, and HTML pages of result images."""

from __future__ import annotations

import argparse
import html
import math
import os
import re
import time

import numpy as np
import torch

from util.html import HTML
from util.util import mkdirs, save_image, tensor2im, tensor2label

# Names written by display_current_results; parsed back on resume.
_WEB_IMAGE_RE = re.compile(r"^epoch(\d+)_iter(\d+)_(.+)\.png$")


def _web_image_name(epoch: int, step: int, label: str) -> str:
    return f"epoch{epoch:03d}_iter{step:07d}_{label}.png"


# A loss line of loss_log.txt, as print_current_errors writes it.
_LOSS_LINE_RE = re.compile(r"^\(epoch: (\d+), iters: (\d+), time: [^)]*\) (.*)$")
_LOSS_VALUE_RE = re.compile(r"(\w+): (\S+)")

# One (epoch, iters within the epoch, {loss name: value}) per print step.
LossPoint = tuple[int, int, dict[str, float]]


def parse_loss_line(line: str) -> LossPoint | None:
    """(epoch, iters, losses) of one `(epoch: E, iters: I, time: T) NAME: value ...` line, else None."""
    match = _LOSS_LINE_RE.match(line.strip())
    if not match:
        return None
    losses = {}
    for name, value in _LOSS_VALUE_RE.findall(match.group(3)):
        try:
            losses[name] = float(value)
        except ValueError:
            continue
    return int(match.group(1)), int(match.group(2)), losses


def add_loss_point(points: list[LossPoint], point: LossPoint) -> None:
    """Append a print step; a step at or before the last one (a resumed or restarted run) replaces the later history."""
    key = point[:2]
    while points and points[-1][:2] >= key:
        points.pop()
    points.append(point)


def read_loss_log(path: str) -> list[LossPoint]:
    """The print steps of a loss_log.txt, in training order (see add_loss_point); [] when it does not exist."""
    points: list[LossPoint] = []
    if not os.path.isfile(path):
        return points
    with open(path, encoding="utf-8", errors="replace") as log_file:
        for line in log_file:
            point = parse_loss_line(line)
            if point is not None:
                add_loss_point(points, point)
    return points


# Matplotlib's tab10 colours, one per loss.
_CURVE_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def _downsample(xy: list[tuple[float, float]], max_points: int) -> list[tuple[float, float]]:
    """At most max_points points: the means of consecutive equal groups when there are more."""
    if len(xy) <= max_points:
        return xy
    group = math.ceil(len(xy) / max_points)
    return [(sum(x for x, _ in chunk) / len(chunk), sum(y for _, y in chunk) / len(chunk))
            for chunk in (xy[i:i + group] for i in range(0, len(xy), group))]


def _label(value: float) -> str:
    return f"{value:.4g}"


def loss_curve_svg(points: list[LossPoint], width: int = 720, height: int = 260, max_points: int = 1000) -> str:
    """An inline SVG plot of the losses: one polyline per loss name, epochs on x, min/max labels, a legend.

    x is the fractional epoch, epoch - 1 + iters / (the largest iters logged); non-finite values are
    left out; more than `max_points` steps are averaged down to that many points per loss.
    """
    names: list[str] = []
    for _, _, losses in points:
        names += [name for name in losses if name not in names]
    epoch_length = max((iters for _, iters, _ in points), default=1) or 1
    series = {name: [] for name in names}
    for epoch, iters, losses in points:
        x = epoch - 1 + iters / epoch_length
        for name, value in losses.items():
            if math.isfinite(value):
                series[name].append((x, value))
    series = {name: _downsample(xy, max_points) for name, xy in series.items()}
    xs = [x for xy in series.values() for x, _ in xy] or [0.0]
    ys = [y for xy in series.values() for _, y in xy] or [0.0]
    x_min, x_max, y_min, y_max = min(xs), max(xs), min(ys), max(ys)
    if x_max == x_min:
        x_min, x_max = x_min - 0.5, x_max + 0.5
    if y_max == y_min:
        y_min, y_max = y_min - 0.5, y_max + 0.5
    left, right, top, bottom = 60, 140, 10, 36
    plot_w, plot_h = width - left - right, height - top - bottom

    def scale(x: float, y: float) -> str:
        px = left + (x - x_min) / (x_max - x_min) * plot_w
        py = top + (y_max - y) / (y_max - y_min) * plot_h
        return f"{px:.1f},{py:.1f}"

    axis_y, axis_x = top + plot_h, left
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="loss-curves" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" role="img" aria-label="training losses">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="none"/>',
        f'<line class="axis" x1="{axis_x}" y1="{axis_y}" x2="{left + plot_w}" y2="{axis_y}" stroke="black"/>',
        f'<line class="axis" x1="{axis_x}" y1="{top}" x2="{axis_x}" y2="{axis_y}" stroke="black"/>',
        f'<text class="x-min" x="{left}" y="{axis_y + 14}" text-anchor="start">{_label(x_min)}</text>',
        f'<text class="x-max" x="{left + plot_w}" y="{axis_y + 14}" text-anchor="end">{_label(x_max)}</text>',
        f'<text x="{left + plot_w / 2:.1f}" y="{axis_y + 28}" text-anchor="middle">epochs</text>',
        f'<text class="y-max" x="{left - 4}" y="{top + 10}" text-anchor="end">{_label(y_max)}</text>',
        f'<text class="y-min" x="{left - 4}" y="{axis_y}" text-anchor="end">{_label(y_min)}</text>',
        f'<text x="{left - 4}" y="{top + plot_h / 2:.1f}" text-anchor="end">loss</text>',
    ]
    for index, (name, xy) in enumerate(series.items()):
        color = _CURVE_COLORS[index % len(_CURVE_COLORS)]
        escaped = html.escape(name, quote=True)
        coordinates = " ".join(scale(x, y) for x, y in xy)
        parts.append(f'<polyline data-loss="{escaped}" points="{coordinates}" fill="none" stroke="{color}" '
                     f'stroke-width="1.5"><title>{escaped}</title></polyline>')
        if len(xy) == 1:  # a polyline of one point draws nothing
            cx, cy = scale(*xy[0]).split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{color}"/>')
        legend_y = top + 12 + 16 * index
        legend_x = left + plot_w + 12
        parts.append(f'<line x1="{legend_x}" y1="{legend_y - 4}" x2="{legend_x + 18}" y2="{legend_y - 4}" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<text class="legend" x="{legend_x + 24}" y="{legend_y}">{escaped}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def make_visuals(label: torch.Tensor, label_nc: int, synthesized: dict[str, torch.Tensor],
                 real: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """One sample's page row as uint8 arrays: the colourised label map (or RGB input), the synthesized images, the real photo."""
    visuals = {"input_label": tensor2label(label, label_nc)}
    visuals.update({name: tensor2im(image) for name, image in synthesized.items()})
    if real is not None and real.numel():
        visuals["real_image"] = tensor2im(real)
    return visuals


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
        # Every print step's losses, for the loss curves at the top of the page; read back from
        # loss_log.txt at start so a resumed run keeps the earlier points.
        self._loss_points: list[LossPoint] = []
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
        if self.use_html:
            self._loss_points = read_loss_log(self.log_name)
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
        if self._loss_points:
            last_epoch, last_iters, _ = self._loss_points[-1]
            webpage.add_header(f"training losses (last print: epoch {last_epoch}, iters {last_iters})")
            webpage.add_markup(loss_curve_svg(self._loss_points))
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
        if self.use_html:
            add_loss_point(self._loss_points, (epoch, i, {name: float(value) for name, value in errors.items()}))
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
