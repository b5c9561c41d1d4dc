"""Minimal static HTML page of image tables, built with dominate."""

from __future__ import annotations

import os

import dominate
from dominate.tags import a, br, div, h3, img, meta, p, table, td, tr
from dominate.util import raw

from util.util import atomic_write, mkdirs


class HTML:
    """An index.html page under web_dir whose images live in web_dir/images."""

    def __init__(self, web_dir: str, title: str, refresh: int = 0) -> None:
        """Create web_dir and web_dir/images and start an empty document titled `title`."""
        self.title = title
        self.web_dir = web_dir
        self.img_dir = os.path.join(web_dir, "images")
        mkdirs([web_dir, self.img_dir])
        self.doc = dominate.document(title=title)
        if refresh > 0:
            with self.doc.head:
                meta(http_equiv="refresh", content=str(refresh))

    def get_image_dir(self) -> str:
        """Return the directory that image links on this page are relative to."""
        return self.img_dir

    def add_header(self, text: str) -> None:
        """Append an h3 header."""
        with self.doc:
            h3(text)

    def add_markup(self, markup: str) -> None:
        """Append trusted markup verbatim (e.g. an inline <svg> plot), in a div of its own."""
        with self.doc:
            div(raw(markup))

    def add_images(self, ims: list[str], txts: list[str], links: list[str], width: int = 512) -> None:
        """Append one table row of images (names relative to images/), each linked and captioned."""
        if not len(ims) == len(txts) == len(links):
            raise ValueError(f"ims, txts and links differ in length: {len(ims)}, {len(txts)}, {len(links)}")
        row_table = table(border=1, style="table-layout: fixed;")
        self.doc.add(row_table)
        with row_table, tr():
            for im, txt, link in zip(ims, txts, links):
                with td(style="word-wrap: break-word;", halign="center", valign="top"), p():
                    # URLs always use '/', whatever os.sep is.
                    with a(href=f"images/{link}"):
                        img(style=f"width:{width}px", src=f"images/{im}")
                    br()
                    p(txt)

    def save(self) -> None:
        """Atomically write the page to web_dir/index.html."""
        rendered = self.doc.render()

        def write(tmp_path: str) -> None:
            with open(tmp_path, "w", encoding="utf-8") as f:
                f.write(rendered)

        atomic_write(os.path.join(self.web_dir, "index.html"), write)
