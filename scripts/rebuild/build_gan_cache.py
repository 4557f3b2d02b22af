"""Build (or resume) the DefGAN training-data cache from photos.

    .venv/bin/python scripts/rebuild/build_gan_cache.py ../shared/data/lfw --out out/gan_cache \\
        --max-images 2400

Fits the largest face of every image, edits it to its own expression and to ``--targets`` drawn
targets, and writes aligned crops in shards (see :mod:`editing.train.gan_data`). Rerun the same command
to resume a killed run; a cache built with other settings is refused.
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    ap.add_argument("--out", required=True, help="cache folder")
    ap.add_argument("--max-images", type=int, default=None, help="at most this many, spread evenly")
    ap.add_argument("--targets", type=int, default=2, help="target expressions per image")
    ap.add_argument("--size", type=int, default=128, help="crop side, pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-renders", action="store_true", help="photos and fitted weights only (2D path)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    import torch

    from editing.train.gan_cache import build_cache
    from editing.train.gan_data import DataConfig
    from face3d.errors import Face3DError

    torch.set_num_threads(max(1, args.threads))
    try:
        config = DataConfig(
            size=args.size,
            targets_per_image=args.targets,
            max_images=args.max_images,
            seed=args.seed,
            renders=not args.no_renders,
        )
        summary = build_cache(args.inputs, args.out, config, progress=not args.no_progress)
    except Face3DError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.code
    print(summary.line())
    for path, reason in summary.failures[:20]:
        print(f"  failed: {path}: {reason}")
    if len(summary.failures) > 20:
        print(f"  ... {len(summary.failures) - 20} more failures in {args.out}/index.jsonl")
    return 0 if summary.total_samples > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
