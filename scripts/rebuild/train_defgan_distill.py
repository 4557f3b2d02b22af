"""Train (or resume) the 2D baseline's deformation generator on the 3D warp's motion (distillation).

    nice .venv/bin/python scripts/rebuild/train_defgan_distill.py --cache out/flow_cache \\
        --out runs/defgan_distill --steps 1500 --threads 1 [--resume] [--max-minutes 20]

The cache comes from ``scripts/rebuild/build_flow_cache.py``; the saved bundle (``<out>/generator``)
pairs the distilled ``G_def`` with the texture generator of ``--texture-from`` (see
:mod:`editing.train.flow_distill`). Rerun with ``--resume`` to continue (on a grown cache too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", required=True, help="flow cache folder")
    ap.add_argument("--out", required=True, help="run folder")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--flow-stride", type=int, default=4, help="G_def predicts at 1/stride resolution")
    ap.add_argument("--base", type=int, default=16, help="G_def's first-level channels")
    ap.add_argument("--max-flow", type=float, default=0.25, help="largest displacement, normalised")
    ap.add_argument("--no-film", action="store_true", help="condition by input channels only")
    ap.add_argument("--texture-from", type=Path, default=Path("assets/defgan"))
    ap.add_argument("--zero-source", action="store_true", help="all-zero source condition (the 2D-only one)")
    ap.add_argument("--init", type=Path, default=None, help="generator folder a new run's G_def starts from")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop (checkpointed) after this")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args(argv)

    import torch

    from editing.gan.networks import GeneratorConfig
    from editing.train.flow_cache import load_flow_cache
    from editing.train.flow_distill import DistillConfig, distill
    from face3d.errors import Face3DError

    torch.set_num_threads(max(1, args.threads))
    deform = GeneratorConfig(
        kind="deform",
        base=args.base,
        flow_stride=args.flow_stride,
        max_flow=args.max_flow,
        film=not args.no_film,
    )
    config = DistillConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        deform=deform,
        zero_source=args.zero_source,
    )
    try:
        cache = load_flow_cache(args.cache)
        meta = {
            "cache": str(args.cache),
            "command": " ".join(["scripts/rebuild/train_defgan_distill.py", *(argv or sys.argv[1:])]),
            "texture_from": str(args.texture_from),
        }
        texture = args.texture_from if args.texture_from.is_dir() else None
        max_s = None if args.max_minutes is None else args.max_minutes * 60
        s = distill(cache, args.out, config, args.resume, texture, meta, max_s, args.init)
    except Face3DError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.code
    print(
        f"distilled on {len(cache)} crops: steps {s.first_step} -> {s.last_step} in {s.seconds:.0f} s "
        f"({s.images_per_second:.1f} crops/s); last {s.last_losses}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
