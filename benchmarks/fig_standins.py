"""The figure of docs/science.md: samples of the synthetic, stand-in and mpii_like eye domains.

Run from the checkout: ``python -m benchmarks.fig_standins [--out docs/img/standins.png]``.
One row per domain (two for mpii_like, whose glasses and brows vary more), the first images of
seed 0 of each domain at the default params: no picking.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image

from simgan.core.plots import grid_png
from simgan.gaze.mpii_like import MpiiLikeParams, mpii_like_domain
from simgan.gaze.render import EyeRenderParams, render_eyes
from simgan.gaze.standin import RealAppearanceParams, standin_domain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/img/standins.png"))
    ap.add_argument("--n", type=int, default=10, help="images per row")
    args = ap.parse_args()
    params, n = EyeRenderParams(), args.n
    mpii = render_eyes(params, 2 * n, seed=0, domain=mpii_like_domain(MpiiLikeParams()))[0]
    rows = {
        "synthetic": render_eyes(params, n, seed=0)[0],
        "standin": render_eyes(params, n, seed=0,
                               domain=standin_domain(RealAppearanceParams()))[0],
        "mpii_like": mpii[:n],
        "mpii_like ": mpii[n:],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # matplotlib writes RGBA; the figure is grey, so 8-bit grey keeps the docs' copy small.
    Image.open(io.BytesIO(grid_png(rows, scale=2.5))).convert("L").save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
