"""Draw the two architecture diagrams as SVG: the encoder-decoder network and the TrambaDA block.

Writes ``docs/figures/network.svg`` and ``docs/figures/trambada_block.svg`` (plain SVG text, a few
kB each, readable on GitHub and in Jupyter). The boxes name the modules that implement them, so a
reader can go from the picture to the code. Run from the repository root:
``python docs/make_diagrams.py``. Needs nothing beyond the standard library.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

OUT = Path(__file__).resolve().parent / "figures"

COLOURS = {
    "conv": "#dde7f3",      # convolutions, resampling
    "block": "#fde3c8",     # TrambaDA blocks
    "clip": "#e3f1dc",      # the frozen CLIP guide and what it produces
    "attn": "#e8def5",      # window attention path
    "mamba": "#fbd9d9",     # selective-scan path
    "agg": "#fff4b8",       # aggregation
    "io": "#eeeeee",        # images
}


class Svg:
    """A minimal SVG canvas: boxes with one or two lines of text, arrows, labels."""

    def __init__(self, width: int, height: int, title: str):
        self.w, self.h = width, height
        self.items: list[str] = [f"<title>{escape(title)}</title>"]

    def box(self, x, y, w, h, text, kind="conv", sub=None, dashed=False):
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        self.items.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="8" fill="{COLOURS[kind]}" '
                          f'stroke="#444" stroke-width="1.4"{dash}/>')
        cy = y + h / 2 + (-6 if sub else 5)
        self.items.append(f'<text x="{x + w / 2}" y="{cy}" class="t">{escape(text)}</text>')
        if sub:
            self.items.append(f'<text x="{x + w / 2}" y="{cy + 17}" class="s">{escape(sub)}</text>')
        return (x, y, w, h)

    def arrow(self, points, colour="#333", dashed=False, label=None, label_at=None):
        path = " ".join(f"{px},{py}" for px, py in points)
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        self.items.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.6" '
                          f'marker-end="url(#head)"{dash}/>')
        if label:
            lx, ly = label_at or points[len(points) // 2]
            self.items.append(f'<text x="{lx}" y="{ly}" class="l">{escape(label)}</text>')

    def text(self, x, y, text, cls="l", anchor="middle"):
        # an inline style, because the class's text-anchor would win over a presentation attribute
        self.items.append(f'<text x="{x}" y="{y}" class="{cls}" style="text-anchor:{anchor}">{escape(text)}</text>')

    def write(self, path: Path) -> Path:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
                f'viewBox="0 0 {self.w} {self.h}" font-family="DejaVu Sans, Arial, sans-serif">\n'
                '<defs><marker id="head" markerWidth="10" markerHeight="8" refX="9" refY="4" '
                'orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="#333"/></marker></defs>\n'
                '<style>.t{font-size:15px;text-anchor:middle;fill:#111}'
                '.s{font-size:12px;text-anchor:middle;fill:#444}'
                '.l{font-size:12.5px;text-anchor:middle;fill:#333}'
                '.h{font-size:18px;font-weight:bold;fill:#111}</style>\n'
                f'<rect width="{self.w}" height="{self.h}" fill="white"/>\n')
        path.write_text(head + "\n".join(self.items) + "\n</svg>\n")
        return path


def centre(b, side):
    x, y, w, h = b
    return {"l": (x, y + h / 2), "r": (x + w, y + h / 2), "t": (x + w / 2, y), "b": (x + w / 2, y + h)}[side]


def network_diagram() -> Svg:
    """The encoder-decoder of :mod:`cliphaze.model.network` with its CLIP guide."""
    s = Svg(1080, 560, "CLIPHaze network")
    s.text(20, 30, "CLIPHaze network (cliphaze.model.CLIPHazeNet)", cls="h", anchor="start")
    hazy = s.box(20, 250, 110, 56, "hazy I", "io", "(b, 3, h, w)")
    guide = s.box(170, 70, 230, 60, "frozen CLIP guide", "clip", "cliphaze.clip.HazeGuide")
    dmap = s.box(450, 70, 250, 60, "density M (b, 1, h, w)", "clip", "or tokens T (b, t, e)")
    s.arrow([centre(hazy, "t"), (75, 100), centre(guide, "l")])
    s.arrow([centre(guide, "r"), centre(dmap, "l")])
    stem = s.box(170, 250, 110, 56, "stem", "conv", "Conv 3x3 -> c0")
    e0 = s.box(310, 250, 120, 56, "encoder 0", "block", "TrambaDA x d0")
    e1 = s.box(390, 350, 120, 56, "encoder 1", "block", "x d1, h/2")
    mid = s.box(470, 450, 120, 56, "bottleneck", "block", "x d2, h/4")
    d1 = s.box(550, 350, 120, 56, "decoder 1", "block", "x d3, h/2")
    d0 = s.box(630, 250, 120, 56, "decoder 0", "block", "TrambaDA x d4")
    head = s.box(790, 250, 110, 56, "head", "conv", "Conv 3x3 -> K, B")
    out = s.box(930, 250, 135, 56, "J = K I - B + I", "io", "soft reconstruction")
    s.arrow([centre(hazy, "r"), centre(stem, "l")])
    s.arrow([centre(stem, "r"), centre(e0, "l")])
    s.arrow([centre(e0, "b"), (370, 378), centre(e1, "l")], label="down: conv 2x2 s2", label_at=(322, 396))
    s.arrow([centre(e1, "b"), (450, 478), centre(mid, "l")], label="down", label_at=(430, 493))
    s.arrow([centre(mid, "r"), (610, 478), centre(d1, "b")], label="up: 1x1 + PixelShuffle", label_at=(700, 493))
    s.arrow([centre(d1, "r"), (690, 378), centre(d0, "b")], label="up", label_at=(705, 396))
    s.arrow([centre(e1, "r"), centre(d1, "l")], dashed=True, label="skip (concat + 1x1)", label_at=(530, 343))
    s.arrow([centre(e0, "r"), centre(d0, "l")], dashed=True, label="skip", label_at=(470, 268))
    s.arrow([centre(d0, "r"), centre(head, "l")])
    s.arrow([centre(head, "r"), centre(out, "l")])
    s.arrow([(75, 306), (75, 540), (997, 540), centre(out, "b")], colour="#777", dashed=True,
            label="the hazy input enters the output formula", label_at=(530, 533))
    # guidance to every stage, resized once per forward pass
    for blk in (e0, e1, mid, d1, d0):
        x, y, w, _ = blk
        s.arrow([(575, 130), (575, 160), (x + w / 2, 160), (x + w / 2, y)], colour="#5a8f3c", dashed=True)
    s.text(712, 152, "M resized to each level", anchor="start")
    s.text(712, 168, "once per pass (density_pyramid)", anchor="start")
    return s


def block_diagram() -> Svg:
    """The TrambaDA block of :mod:`cliphaze.block.trambada` and the two CAM variants."""
    s = Svg(1090, 600, "TrambaDA block")
    s.text(20, 30, "TrambaDA block (cliphaze.block.TrambaDA)", cls="h", anchor="start")
    x_in = s.box(20, 250, 100, 56, "x", "io", "(b, c, h, w)")
    ln = s.box(160, 250, 110, 56, "LayerNorm", "conv", "per pixel")
    attn = s.box(330, 150, 220, 60, "window attention", "attn", "local: Swin windows, rel. bias")
    ssm = s.box(330, 350, 220, 60, "SS2D", "mamba", "global: 4-direction selective scan")
    agg = s.box(610, 236, 250, 84, "F = Wa F_attn + Wm F_mamba", "agg", "CAM: Wa + Wm = 1 per pixel, channel")
    add = s.box(885, 250, 70, 56, "+ x", "conv")
    ffn = s.box(980, 250, 100, 56, "+ FFN", "conv", "GDFN, LN")
    s.arrow([centre(x_in, "r"), centre(ln, "l")])
    s.arrow([centre(ln, "r"), (300, 278), (300, 180), centre(attn, "l")])
    s.arrow([(300, 278), (300, 380), centre(ssm, "l")])
    s.arrow([centre(attn, "r"), (585, 180), (585, 265), (610, 265)], label="F_attn", label_at=(585, 172))
    s.arrow([centre(ssm, "r"), (585, 380), (585, 295), (610, 295)], label="F_mamba", label_at=(585, 400))
    s.arrow([centre(agg, "r"), centre(add, "l")])
    s.arrow([centre(add, "r"), centre(ffn, "l")])
    s.arrow([(70, 306), (70, 335), (920, 335), centre(add, "b")], colour="#777", dashed=True,
            label="residual", label_at=(200, 327))
    # the two ways to get (Wa, Wm)
    s.text(20, 470, "Where (Wa, Wm) come from (cliphaze.block.aggregation):", cls="t", anchor="start")
    s.box(20, 490, 500, 90, "density-aware: M -> resize -> 1x1 conv to 2c", "clip",
            "split -> pairwise softmax; non-homogeneous haze, dense haze -> Wm")
    sam = s.box(560, 490, 520, 90, "semantic-aware: u <-> CLIP tokens T", "clip",
                "bidirectional cross-attention, concat, 2 depthwise convs -> 1x1 -> softmax")
    s.arrow([(490, 490), (490, 450), (700, 450), (700, 320)], colour="#5a8f3c", dashed=True)
    s.arrow([centre(sam, "t"), (820, 450), (790, 450), (790, 320)], colour="#5a8f3c", dashed=True)
    s.text(735, 120, "baselines for ablations: fixed 0.5/0.5 sum, static learned, one path only",
           anchor="middle")
    return s


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, diagram in (("network.svg", network_diagram()), ("trambada_block.svg", block_diagram())):
        print(diagram.write(OUT / name))


if __name__ == "__main__":
    main()
