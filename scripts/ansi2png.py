#!/usr/bin/python3
"""Render terminal text with ANSI colours (as `tmux capture-pane -e -p` prints it) to a PNG.

    ansi2png.py IN.txt OUT.png [--cols N] [--rows N] [--title TEXT] [--trim]

Used by scripts/screenshots.sh; needs Debian's python3-pil and fonts-dejavu-core only.
Understands the SGR codes tmux emits: bold, dim, italic, underline, reverse, the 16 colours,
the 256-colour palette and 24-bit colour, for foreground and background.
"""
import argparse
import re

from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
SIZE = 14
PAD = 12
TITLE_H = 28

# A dark theme (the colours of GNOME Terminal's "Tango dark").
FG = (211, 215, 207)
BG = (30, 30, 30)
BASE16 = [
    (46, 52, 54), (204, 0, 0), (78, 154, 6), (196, 160, 0),
    (52, 101, 164), (117, 80, 123), (6, 152, 154), (211, 215, 207),
    (85, 87, 83), (239, 41, 41), (138, 226, 52), (252, 233, 79),
    (114, 159, 207), (173, 127, 168), (52, 226, 226), (238, 238, 236),
]


def palette(n):
    if n < 16:
        return BASE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    v = 8 + (n - 232) * 10
    return (v, v, v)


class Style:
    def __init__(self):
        self.reset()

    def reset(self):
        self.fg = None
        self.bg = None
        self.bold = self.dim = self.italic = self.underline = self.reverse = False

    def copy(self):
        s = Style()
        s.__dict__.update(self.__dict__)
        return s

    def apply(self, params):
        codes = [int(p) if p else 0 for p in params.split(";")] if params else [0]
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                self.reset()
            elif c == 1:
                self.bold = True
            elif c == 2:
                self.dim = True
            elif c == 3:
                self.italic = True
            elif c == 4:
                self.underline = True
            elif c == 7:
                self.reverse = True
            elif c == 22:
                self.bold = self.dim = False
            elif c == 23:
                self.italic = False
            elif c == 24:
                self.underline = False
            elif c == 27:
                self.reverse = False
            elif 30 <= c <= 37:
                self.fg = BASE16[c - 30]
            elif 90 <= c <= 97:
                self.fg = BASE16[c - 90 + 8]
            elif 40 <= c <= 47:
                self.bg = BASE16[c - 40]
            elif 100 <= c <= 107:
                self.bg = BASE16[c - 100 + 8]
            elif c == 39:
                self.fg = None
            elif c == 49:
                self.bg = None
            elif c in (38, 48) and i + 1 < len(codes):
                if codes[i + 1] == 5 and i + 2 < len(codes):
                    colour = palette(codes[i + 2])
                    i += 2
                elif codes[i + 1] == 2 and i + 4 < len(codes):
                    colour = tuple(codes[i + 2:i + 5])
                    i += 4
                else:
                    colour = None
                if c == 38:
                    self.fg = colour
                else:
                    self.bg = colour
            i += 1

    def colours(self):
        fg = self.fg or FG
        bg = self.bg or BG
        if self.bold and fg in BASE16[:8]:
            fg = BASE16[BASE16.index(fg) + 8]
        if self.reverse:
            fg, bg = bg, fg
        if self.dim:
            fg = tuple((a + b) // 2 for a, b in zip(fg, bg))
        return fg, bg


ESC = re.compile(r"\x1b\[([0-9;]*)([A-Za-z])|\x1b[()][0-9A-Za-z]|\x1b[=>]")


def cells(text, cols, rows):
    """The screen as rows of (char, Style), `cols` wide and `rows` high."""
    grid = []
    style = Style()
    for line in text.split("\n")[:rows]:
        row = []
        pos = 0
        for m in ESC.finditer(line):
            row += [(ch, style.copy()) for ch in line[pos:m.start()]]
            if m.group(2) == "m":
                style.apply(m.group(1))
            pos = m.end()
        row += [(ch, style.copy()) for ch in line[pos:]]
        row = row[:cols]
        grid.append(row)
    while len(grid) < rows:
        grid.append([])
    return grid


def render(text, out, cols, rows, title, trim=False):
    grid = cells(text, cols, rows)
    if trim:
        while len(grid) > 1 and all(c == " " for c, _ in grid[-1]):
            grid.pop()
        rows = len(grid)
    font = ImageFont.truetype(FONT, SIZE)
    bold = ImageFont.truetype(FONT_BOLD, SIZE)
    cw = round(font.getlength("M"))
    ascent, descent = font.getmetrics()
    ch = ascent + descent + 2
    top = TITLE_H if title else 0
    img = Image.new("RGB", (cols * cw + 2 * PAD, rows * ch + 2 * PAD + top), BG)
    draw = ImageDraw.Draw(img)
    if title:
        draw.rectangle([0, 0, img.width, TITLE_H - 1], fill=(56, 56, 56))
        for i, c in enumerate([(237, 106, 94), (245, 191, 79), (98, 197, 84)]):
            x = PAD + i * 20
            draw.ellipse([x, 8, x + 12, 20], fill=c)
        tw = font.getlength(title)
        draw.text(((img.width - tw) / 2, 6), title, font=font, fill=(200, 200, 200))
    for y, row in enumerate(grid):
        py = top + PAD + y * ch
        for x, (char, style) in enumerate(row):
            px = PAD + x * cw
            fg, bg = style.colours()
            if bg != BG:
                draw.rectangle([px, py, px + cw - 1, py + ch - 1], fill=bg)
            if char != " ":
                draw.text((px, py + 1), char, font=bold if style.bold else font, fill=fg)
            if style.underline:
                draw.line([px, py + ch - 2, px + cw - 1, py + ch - 2], fill=fg)
    # A palette image is a fraction of the size of an RGB one for a few flat colours.
    img.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--cols", type=int, default=120)
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--title", default="")
    ap.add_argument("--trim", action="store_true", help="leave out blank rows at the bottom")
    a = ap.parse_args()
    with open(a.input, encoding="utf-8", errors="replace") as f:
        text = f.read()
    render(text, a.output, a.cols, a.rows, a.title, a.trim)


if __name__ == "__main__":
    main()
