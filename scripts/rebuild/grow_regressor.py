"""Grow a trained regressor into a wider and deeper one with the same outputs (thin wrapper).

``--size`` also enlarges its input crops (that changes the outputs: fine-tune it on shards made
with the same ``--size``).

    .venv/bin/python scripts/rebuild/grow_regressor.py --init assets/regressor --width 2 --hidden 512 \
        --extra-after 4,5,6 --out runs/grown

The grown folder is an ordinary pretrained folder: fine-tune it with ``finetune_regressor.py
--init``. See :mod:`face3d.train.grow`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from face3d.argtypes import float_in, int_at_least, int_list


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", required=True, help="pretrained regressor folder to grow")
    ap.add_argument("--out", required=True, help="folder for the grown network")
    ap.add_argument("--width", type=float_in(1.0, 8.0), default=1.0, help="channel multiplier (>= 1)")
    ap.add_argument(
        "--hidden", type=int_at_least(1), default=None, help="fully connected width (default: scaled)"
    )
    ap.add_argument("--extra-after", type=int_list(0), default=[], help="comma list of stage indices")
    ap.add_argument(
        "--size", type=int_at_least(1), default=None, help="input crop side (changes the outputs)"
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the new weights")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    if out == Path(args.init).resolve():
        ap.error("--out: is the --init folder (inputs are never overwritten)")

    from face3d.errors import Face3DError
    from face3d.regress.network import RegressorNet
    from face3d.train.grow import grow, parameter_count

    try:
        net = RegressorNet.from_pretrained(args.init)
    except Face3DError as err:
        print(f"grow_regressor: error: {err}", file=sys.stderr)
        return err.code
    try:
        grown = grow(net, args.width, args.hidden, args.extra_after, args.seed, args.size)
    except ValueError as err:
        ap.error(str(err))
    grown.save_pretrained(out)
    print(
        f"{parameter_count(net):,} -> {parameter_count(grown):,} parameters, "
        f"channels {list(grown.config.channels)}, hidden {grown.config.hidden}, "
        f"input {grown.config.size} px: {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
