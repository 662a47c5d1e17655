"""CLI: ``python -m scenegen --family NAME --seed N --out file.png`` writes a colourised depth
picture (left: sensor depth, right: labels) for eyeballing a family."""

from __future__ import annotations

import argparse

import numpy as np

from . import FAMILIES, make_scene

_LABEL_RGB = np.array([[30, 30, 30], [140, 90, 40], [200, 170, 110], [220, 40, 40], [60, 120, 230]], dtype=np.uint8)


def colourise(depth: np.ndarray) -> np.ndarray:
    import matplotlib

    valid = depth > 0
    lo, hi = (np.percentile(depth[valid], [1, 99]) if valid.any() else (0.0, 1.0))
    x = np.clip((depth - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = (matplotlib.colormaps["turbo"](x)[..., :3] * 255).astype(np.uint8)
    rgb[~valid] = 0
    return rgb


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m scenegen", description=__doc__)
    ap.add_argument("--family", required=True, choices=FAMILIES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--clean", action="store_true", help="ideal depth, no sensor effects")
    a = ap.parse_args(argv)
    sc = make_scene(a.family, a.seed, noise=not a.clean)
    img = np.concatenate([colourise(sc.depth), _LABEL_RGB[sc.labels]], axis=1)
    from PIL import Image

    Image.fromarray(img).save(a.out)
    for r in sc.rocks:
        print(f"rock {r.shape} centre={np.round(r.centre, 3).tolist()} size={np.round(r.size, 3).tolist()} "
              f"protrusion={r.protrusion:.3f} visible_fraction={r.visible_fraction:.2f} in_bucket={r.in_bucket} visible={r.visible}")
    print(f"wrote {a.out} ({sc.width}x{sc.height}, {len(sc.rocks)} rocks)")


if __name__ == "__main__":
    main()
