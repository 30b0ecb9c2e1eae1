"""sha256 of the built-in eye domains' bytes: proves a refactor left the byte format alone.

Run before and after a change to :mod:`simgan.gaze.render` or a domain's shading and
diff the output: ``python -m benchmarks.render_hashes > before.txt``. Covers two seeds, a range
that starts mid-block and both the images and the label tables of each domain. Run it with
``-m`` from the checkout to measure: as ``python benchmarks/render_hashes.py`` the import of
``simgan`` goes to wherever the environment's editable install points (another worktree).
"""

from __future__ import annotations

import hashlib

from simgan.gaze.mpii_like import MpiiLikeParams, mpii_like_domain
from simgan.gaze.render import EyeRenderParams, render_eyes
from simgan.gaze.standin import RealAppearanceParams, standin_domain

DOMAINS = {
    "synthetic": lambda: None,
    "standin": lambda: standin_domain(RealAppearanceParams()),
    "mpii_like": lambda: mpii_like_domain(MpiiLikeParams()),
}


def digest(domain_name: str, seed: int, start: int, n: int) -> str:
    """Hex sha256 of images and labels (CSV text) of one range of one domain."""
    params = EyeRenderParams()
    images, labels = render_eyes(params, n, seed=seed, start=start, domain=DOMAINS[domain_name]())
    h = hashlib.sha256(images.tobytes())
    h.update(labels.to_csv(index=False, float_format="%.17g").encode())
    return h.hexdigest()


def main() -> None:
    for name in DOMAINS:
        for seed, start, n in ((0, 0, 512), (1, 300, 700)):
            print(f"{name:9s} seed={seed} start={start:4d} n={n:4d} {digest(name, seed, start, n)}")


if __name__ == "__main__":
    main()
