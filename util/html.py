"""Static HTML pages of image tables that fit a PAGE_WIDTH-wide window, built with dominate."""

from __future__ import annotations

import os
from typing import cast

import dominate
from dominate.tags import a, div, h3, img, meta, style, table, tbody, td, th, thead, tr, video
from dominate.util import raw

from util.files import atomic_write, mkdirs

# Every page fits a window this wide without horizontal scrolling.
PAGE_WIDTH = 1400
_BODY_MARGIN = 16  # px, left and right (the CSS below)
_SCROLLBAR = 20  # px a vertical scrollbar may take from the window
_CELL_PADDING = 4  # px, left and right of every image cell (the CSS below)
# Small images are enlarged by a whole factor, at most this one, with pixelated scaling: every pixel
# stays visible as itself instead of being smoothed over.
_MAX_ZOOM = 4

_CSS = f"""
body {{ font-family: sans-serif; margin: 8px {_BODY_MARGIN}px; }}
table.images {{ border-collapse: collapse; margin-bottom: 16px; }}
table.images th, table.images td {{ padding: 2px {_CELL_PADDING}px; text-align: center; vertical-align: top; }}
table.images th {{ font-weight: normal; border-bottom: 1px solid #bbb; }}
table.images th.group {{ font-weight: bold; border-bottom: 1px solid #bbb; }}
table.images td.name {{ text-align: left; font-size: 12px; color: #555; padding-top: 10px; }}
table.images img {{ max-width: 100%; height: auto; image-rendering: pixelated; }}
"""


def display_width(image_width: int, columns: int, page_width: int = PAGE_WIDTH) -> int:
    """Width to show an image at in a row of `columns` images so the row fits `page_width`.

    An image narrower than its cell is enlarged by the largest whole factor that fits (at most 4);
    a wider one is scaled down to the cell.
    """
    cell = (page_width - 2 * _BODY_MARGIN - _SCROLLBAR) // max(columns, 1) - 2 * _CELL_PADDING
    if image_width >= cell:
        return cell
    return image_width * min(_MAX_ZOOM, cell // max(image_width, 1))


class HTML:
    """An index.html page under web_dir whose images live in web_dir/images."""

    def __init__(self, web_dir: str, title: str, refresh: int = 0) -> None:
        """Create web_dir and web_dir/images and start an empty document titled `title`."""
        self.title = title
        self.web_dir = web_dir
        self.img_dir = os.path.join(web_dir, "images")
        mkdirs([web_dir, self.img_dir])
        self.doc = dominate.document(title=title)
        with self.doc.head:
            meta(charset="utf-8")
            style(raw(_CSS))
            if refresh > 0:
                meta(http_equiv="refresh", content=str(refresh))
        # The image table rows go to, and the columns its header names (a new table when they change).
        self._rows = None
        self._columns: list[tuple[str, str]] | None = None

    def get_image_dir(self) -> str:
        """Return the directory that image links on this page are relative to."""
        return self.img_dir

    def add_header(self, text: str) -> None:
        """Append an h3 header (and end the current image table)."""
        self._rows = None
        with self.doc:
            h3(text)

    def add_markup(self, markup: str) -> None:
        """Append trusted markup verbatim (e.g. an inline <svg> plot), in a div of its own."""
        self._rows = None
        with self.doc:
            div(raw(markup))

    def _start_table(self, columns: list[tuple[str, str]]) -> None:
        """A table whose header names the columns; (group, name) pairs with the same group share a group header."""
        grouped = any(group for group, _ in columns)
        image_table = table(cls="images")
        self.doc.add(image_table)
        with image_table:
            with thead():
                with tr():
                    index = 0
                    while index < len(columns):
                        group, name = columns[index]
                        span = 1
                        while group and index + span < len(columns) and columns[index + span][0] == group:
                            span += 1
                        if group:
                            th(group, colspan=span, cls="group")
                        else:
                            th(name, rowspan=2 if grouped else 1)
                        index += span
                if grouped:
                    with tr():
                        for group, name in columns:
                            if group:
                                th(name)
            self._rows = tbody()
        self._columns = list(columns)

    def add_image_row(self, name: str, columns: list[tuple[str, str]], ims: list[str], widths: list[int]) -> None:
        """Append a row of images (names relative to images/, each linked to itself at full size) under a line naming it.

        `columns` are (group, column name) pairs for the table's header; `widths` are the widths to show
        each image at (see display_width). Rows with other columns start a new table.
        """
        if not len(columns) == len(ims) == len(widths):
            raise ValueError(f"columns, ims and widths differ in length: {len(columns)}, {len(ims)}, {len(widths)}")
        if self._rows is None or self._columns != list(columns):
            self._start_table(columns)
        with cast(tbody, self._rows):
            tr(td(name, colspan=len(ims), cls="name"))
            with tr():
                for (_, column), im, width in zip(columns, ims, widths):
                    # URLs always use '/', whatever os.sep is.
                    if im.endswith(".mp4"):  # a video the browser plays inline, looping, with its controls
                        td(video(src=f"images/{im}", width=str(width), title=column, autoplay=True, loop=True, muted=True, controls=True))
                    else:  # a still image, or an animated WebP (which an <img> plays)
                        td(a(img(src=f"images/{im}", width=str(width), alt=column, title=column), href=f"images/{im}"))

    def save(self) -> None:
        """Atomically write the page to web_dir/index.html."""
        rendered = self.doc.render()

        def write(tmp_path: str) -> None:
            with open(tmp_path, "w", encoding="utf-8") as f:
                f.write(rendered)

        atomic_write(os.path.join(self.web_dir, "index.html"), write)
