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
from PIL import Image

from util.files import mkdirs, sweep_temporaries
from util.html import HTML, display_width
from util.images import save_image, tensor2im, tensor2label
from util.video import write_video

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
    return [
        (sum(x for x, _ in chunk) / len(chunk), sum(y for _, y in chunk) / len(chunk))
        for chunk in (xy[i : i + group] for i in range(0, len(xy), group))
    ]


# The largest tick value: a plot of values beyond it is clipped there (a difference of two stays finite).
_TICK_LIMIT = 1e300


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """About `count` + 1 round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [low, high].

    Any range is drawable: non-finite ends fall back to the other end (or 0), ends beyond +-1e300 are
    clipped (so that their difference is finite), and an empty range is widened around its value.
    """
    low = low if math.isfinite(low) else (high if math.isfinite(high) else 0.0)
    high = high if math.isfinite(high) else low
    low, high = max(min(low, high), -_TICK_LIMIT), min(max(low, high), _TICK_LIMIT)
    if not high > low:
        # +-0.5 disappears in the rounding of a huge value (1e17 - 0.5 == 1e17): widen relative to it.
        pad = max(0.5, abs(low) * 0.1)
        low, high = low - pad, high + pad
    raw_step = (high - low) / count
    magnitude = 10.0 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * magnitude >= raw_step * (1 - 1e-9))
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def _tick_label(value: float) -> str:
    return f"{value:g}"


def _loss_panel(
    name: str, xy: list[tuple[float, float]], x_ticks: list[float], color: str, x0: float, y0: float, width: int, height: int
) -> list[str]:
    """SVG elements of one loss's panel at (x0, y0): its own y axis with round ticks, the shared epoch ticks."""
    left, right, top, bottom = 46, 12, 20, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    ys = [y for _, y in xy] or [0.0]
    y_ticks = nice_ticks(min(ys), max(ys))
    x_lo, x_hi, y_lo, y_hi = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def px(x: float) -> float:
        return x0 + left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def py(y: float) -> float:
        return y0 + top + (y_hi - y) / (y_hi - y_lo) * plot_h

    escaped = html.escape(name, quote=True)
    parts = [
        f'<g class="panel" data-loss="{escaped}">',
        f'<text class="panel-title" x="{x0 + left:.1f}" y="{y0 + 13:.1f}" fill="{color}" font-weight="bold">{escaped}</text>',
        f'<text class="last-value" x="{x0 + width - right:.1f}" y="{y0 + 13:.1f}" text-anchor="end" fill="#555">'
        f'{"last " + _tick_label(round(xy[-1][1], 4)) if xy else "no finite values"}</text>',
        f'<rect x="{x0 + left:.1f}" y="{y0 + top:.1f}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#999"/>',
    ]
    for tick in y_ticks:
        parts.append(f'<line x1="{x0 + left:.1f}" y1="{py(tick):.1f}" x2="{x0 + left + plot_w:.1f}" y2="{py(tick):.1f}" stroke="#e4e4e4"/>')
        parts.append(f'<text class="y-tick" x="{x0 + left - 4:.1f}" y="{py(tick) + 4:.1f}" text-anchor="end">{_tick_label(tick)}</text>')
    for tick in x_ticks:
        parts.append(
            f'<line x1="{px(tick):.1f}" y1="{y0 + top + plot_h:.1f}" x2="{px(tick):.1f}" y2="{y0 + top + plot_h + 4:.1f}" stroke="#999"/>'
        )
        parts.append(
            f'<text class="x-tick" x="{px(tick):.1f}" y="{y0 + top + plot_h + 15:.1f}" text-anchor="middle">{_tick_label(tick)}</text>'
        )
    parts.append(f'<text x="{x0 + left + plot_w / 2:.1f}" y="{y0 + height - 3:.1f}" text-anchor="middle" fill="#555">epoch</text>')
    coordinates = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in xy)
    parts.append(
        f'<polyline data-loss="{escaped}" points="{coordinates}" fill="none" stroke="{color}" stroke-width="1.5">'
        f'<title>{escaped}</title></polyline>'
    )
    if len(xy) == 1:  # a polyline of one point draws nothing
        parts.append(f'<circle cx="{px(xy[0][0]):.1f}" cy="{py(xy[0][1]):.1f}" r="2" fill="{color}"/>')
    parts.append("</g>")
    return parts


def loss_curve_svg(
    points: list[LossPoint], panel_width: int = 330, panel_height: int = 170, columns: int = 4, max_points: int = 1000
) -> str:
    """An inline SVG of the losses: one small panel per loss with its own y axis, `columns` panels a row.

    A loss an order of magnitude larger than another no longer flattens it. x is the fractional epoch,
    epoch - 1 + iters / (the largest iters logged), with the same round ticks in every panel; non-finite
    values are left out; more than `max_points` steps are averaged down to that many points per loss.
    """
    names: list[str] = []
    for _, _, losses in points:
        names += [name for name in losses if name not in names]
    epoch_length = max((iters for _, iters, _ in points), default=1) or 1
    series: dict[str, list] = {name: [] for name in names}
    for epoch, iters, losses in points:
        x = epoch - 1 + iters / epoch_length
        for name, value in losses.items():
            if math.isfinite(value):
                series[name].append((x, value))
    series = {name: _downsample(xy, max_points) for name, xy in series.items()}
    xs = [x for xy in series.values() for x, _ in xy] or [0.0]
    x_ticks = nice_ticks(min(xs), max(xs), count=5)
    columns = max(1, min(columns, len(series)))
    rows = max(1, math.ceil(len(series) / columns))
    width, height = columns * panel_width, rows * panel_height
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="loss-curves" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" role="img" aria-label="training losses">'
    ]
    for index, (name, xy) in enumerate(series.items()):
        row, column = divmod(index, columns)
        parts += _loss_panel(
            name,
            xy,
            x_ticks,
            _CURVE_COLORS[index % len(_CURVE_COLORS)],
            column * panel_width,
            row * panel_height,
            panel_width,
            panel_height,
        )
    parts.append("</svg>")
    return "\n".join(parts)


# How the results and training pages name the visuals' columns: (group, column).
_COLUMN_NAMES = {"input_label": "input", "synthesized_image": "synthesized", "real_image": "real photo"}
_STYLE_RE = re.compile(r"^synthesized_image_style(\d+)$")


def column_names(labels: list[str]) -> list[tuple[str, str]]:
    """(group, column name) of each visual: the styles grouped under one header, the others by name."""
    n_styles = sum(1 for label in labels if _STYLE_RE.match(label))
    names = []
    for label in labels:
        style = _STYLE_RE.match(label)
        if style:
            names.append((f"synthesized: {n_styles} styles (one feature cluster drawn per object)", f"style {style.group(1)}"))
        else:
            names.append(("", _COLUMN_NAMES.get(label, label.replace("_", " "))))
    return names


def make_visuals(
    label: torch.Tensor, label_nc: int, synthesized: dict[str, torch.Tensor], real: torch.Tensor | None = None
) -> dict[str, np.ndarray]:
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
        # (epoch, step) -> (label, image width) of every visual shown on the page, so the
        # page is rebuilt from memory rather than by rescanning the disk.
        self._saved: dict[tuple[int, int], list[tuple[str, int]]] = {}
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
            sweep_temporaries(self.img_dir)  # images a killed run was writing
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
                with Image.open(os.path.join(self.img_dir, file_name)) as image:  # reads the header only
                    self._saved.setdefault(key, []).append((match.group(3), image.width))

    def _display_widths(self, image_widths: list[int]) -> list[int]:
        """Widths to show a row of images at: fitted to the page (util.html.display_width), at most --display_winsize."""
        return [min(display_width(width, len(image_widths)), self.win_size) for width in image_widths]

    def display_current_results(self, visuals: dict[str, np.ndarray], epoch: int, step: int) -> None:
        """Send the visuals to TensorBoard and/or save them and rebuild the training web page."""
        if self.writer is not None:
            for label, image in visuals.items():
                self.writer.add_image(label, image, global_step=step, dataformats="HWC" if image.ndim == 3 else "HW")
        if not self.use_html:
            return
        for label, image in visuals.items():
            save_image(image, os.path.join(self.img_dir, _web_image_name(epoch, step, label)))
        self._saved[(epoch, step)] = [(label, image.shape[1]) for label, image in visuals.items()]
        webpage = HTML(self.web_dir, f"Experiment name = {self.name}", refresh=30)
        if self._loss_points:
            last_epoch, last_iters, _ = self._loss_points[-1]
            webpage.add_header(f"training losses (last print: epoch {last_epoch}, iters {last_iters})")
            webpage.add_markup(loss_curve_svg(self._loss_points))
            webpage.add_header("results, newest first")
        for (saved_epoch, saved_step), shown in sorted(self._saved.items(), reverse=True):
            labels = [label for label, _ in shown]
            names = [_web_image_name(saved_epoch, saved_step, label) for label in labels]
            webpage.add_image_row(
                f"epoch {saved_epoch}, iteration {saved_step}",
                column_names(labels),
                names,
                self._display_widths([width for _, width in shown]),
            )
        webpage.save()

    def plot_current_errors(self, errors: dict[str, float], step: int) -> None:
        """Log each loss as a TensorBoard scalar, when TensorBoard logging is on."""
        if self.writer is None:
            return
        for tag, value in errors.items():
            self.writer.add_scalar(tag, value, step)

    def print_current_errors(self, epoch: int, i: int, errors: dict[str, float], t: float) -> str:
        """Format the losses as one line, append it to loss_log.txt (when training) and return it."""
        message = f"(epoch: {epoch:d}, iters: {i:d}, time: {t:.3f}) "
        for name, value in errors.items():
            message += f"{name}: {value:.3f} "
        if self.log_name is not None:
            with open(self.log_name, "a", encoding="utf-8") as log_file:
                log_file.write(message + "\n")
        if self.use_html:
            add_loss_point(self._loss_points, (epoch, i, {name: float(value) for name, value in errors.items()}))
        return message

    def save_images(self, webpage: HTML, visuals: dict[str, np.ndarray], image_path: str) -> None:
        """Save test visuals as images/<name>_<label>.png and add them to `webpage` as a row named <name>. A visual
        with a time axis (T x H x W x 3) is a video: its frames go to images/<name>/<label>_<t>.png and the cell
        plays images/<name>_<label>.mp4 (or .webp where no MP4 encoder is installed)."""
        image_dir = webpage.get_image_dir()
        name = os.path.splitext(os.path.basename(os.path.normpath(image_path)))[0]
        ims = []
        for label, image in visuals.items():
            if image.ndim == 4:
                mkdirs(os.path.join(image_dir, name))
                for index, frame in enumerate(image):
                    save_image(frame, os.path.join(image_dir, name, f"{label}_{index:04d}.png"))
                ims.append(os.path.basename(write_video(image, os.path.join(image_dir, f"{name}_{label}"))))
                continue
            image_name = f"{name}_{label}.png"
            save_image(image, os.path.join(image_dir, image_name))
            ims.append(image_name)
        widths = self._display_widths([image.shape[-2] for image in visuals.values()])
        webpage.add_image_row(name, column_names(list(visuals)), ims, widths)

    def close(self) -> None:
        """Flush and close the TensorBoard writer, if any."""
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
