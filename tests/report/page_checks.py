"""Checks of a self-contained HTML report page, shared by the run, compare and sweep report tests."""

from __future__ import annotations

import base64
import html as stdlib_html
import io
import re

from PIL import Image


def assert_self_contained(text: str) -> None:
    """No URL leaves the page: every image is an inline PNG, no script or stylesheet is fetched."""
    for forbidden in ("http://", "https://", 'src="/', "<script src", "<link", "url("):
        assert forbidden not in text, forbidden
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', text))


def decoded_pngs(text: str) -> list[Image.Image]:
    """Every inline image, decoded (PIL raises if one is not a valid PNG)."""
    images = []
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', text):
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        image.load()
        assert image.format == "PNG"
        images.append(image)
    return images


def headings(text: str) -> list[str]:
    """The ``<h2>`` titles, unescaped."""
    return [stdlib_html.unescape(h) for h in re.findall(r"<h2>(.*?)</h2>", text)]
