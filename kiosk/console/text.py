"""Text for the console's widgets: names exactly as typed, photos drawn in half blocks.

Names come from the roster and the guard's typing, so nothing shown is ever parsed as Textual
markup: a ``[/]`` in a name would crash the console, a ``[black on black]`` would hide a barred
guardian. Whatever holds a name or a typed value reaches a widget as a ``Text`` (see ``plain``), never
as a ``str``; only the catalogue's own fixed strings are left as they are.
"""

from __future__ import annotations

from rich.color import Color
from rich.style import Style
from rich.text import Text

PHOTO_SIZE = (14, 5)  # cells inside the photo box; each cell is two pixels high


def plain(*parts: str) -> Text:
    """Strings shown exactly as they are: a ``str`` handed to a Textual widget is parsed as markup."""
    return Text("".join(parts))


def photo_text(path, size: tuple[int, int] = PHOTO_SIZE) -> Text:
    """A thumbnail in upper-half blocks: each cell shows two pixels (foreground on top, background below)."""
    from PIL import Image

    width, height = size
    with Image.open(path) as image:
        pixels = image.convert("RGB").resize((width, height * 2)).load()
    text = Text()
    for row in range(height):
        for col in range(width):
            top, bottom = pixels[col, row * 2], pixels[col, row * 2 + 1]
            text.append("▀", style=Style(color=Color.from_rgb(*top), bgcolor=Color.from_rgb(*bottom)))
        if row < height - 1:
            text.append("\n")
    return text
