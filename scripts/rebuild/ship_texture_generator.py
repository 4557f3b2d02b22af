"""Ship a trained texture generator into ``assets/gan3d`` with the mouth-cycle verdict.

    .venv/bin/python scripts/rebuild/ship_texture_generator.py --run runs/gan3d_cycle \\
        --bench out/bench_mouth_cycle.json

Copies ``RUN/generator`` (its best held-out weights) and records in its ``config.json`` meta the
benchmark's per-bin summary and whether ``--refine auto`` may use it
(:func:`editing.gan.checkpoint.cycle_verdict`: it must beat the hand-made fill on the held-out mouth
cycle at [0,30) and [30,60) and not lose at [60,90]). The benchmark must have scored this run's
generator (``--generator RUN/generator``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="the training run folder")
    ap.add_argument(
        "--bench", type=Path, required=True, help="bench_mouth_cycle.py's JSON for that generator"
    )
    ap.add_argument("--out", type=Path, default=None, help="default: the shipped assets/gan3d")
    args = ap.parse_args(argv)

    from editing.gan.checkpoint import AUTO_KEY, SHIPPED, cycle_verdict, load_generators, save_generators

    bundle = load_generators(args.run / "generator")
    bench = json.loads(args.bench.read_text())
    if Path(bench["generator"]).resolve() != (args.run / "generator").resolve() or bench.get(
        "generator_step"
    ) != bundle.meta.get("step"):
        print(
            f"error: {args.bench} scored {bench['generator']} (step {bench.get('generator_step')}), "
            f"not {args.run / 'generator'} (step {bundle.meta.get('step')})",
            file=sys.stderr,
        )
        return 2
    earned, why = cycle_verdict(bench["per_bin"])
    meta = {**bundle.meta, AUTO_KEY: earned, "refine_auto_reason": why, "mouth_cycle": bench["per_bin"]}
    out = save_generators(args.out or SHIPPED["texture"], bundle.texture, size=bundle.size, meta=meta)
    print(
        f"shipped {args.run / 'generator'} (step {bundle.meta.get('step')}) to {out}; --refine auto: "
        f"{'uses it' if earned else 'does not use it'} ({why})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
