"""Average regressor checkpoints of one initialisation into one ("model soup"; thin wrapper).

    .venv/bin/python scripts/rebuild/soup_regressor.py runs/a/final_ema runs/b/final_ema --out runs/soup_ab

Each argument is a pretrained folder (``config.json`` + ``weights.pt``); ``--weights`` gives their
relative weights (default equal). The output folder must not be one of the inputs. See
:mod:`face3d.train.average`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from face3d.argtypes import float_list


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", help="pretrained regressor folders (the same architecture)")
    ap.add_argument("--out", required=True, help="folder for the averaged network")
    ap.add_argument("--weights", type=float_list(0.0), default=None, help="comma list, one per folder")
    args = ap.parse_args(argv)
    if args.weights is not None and len(args.weights) != len(args.folders):
        ap.error(f"--weights: {len(args.weights)} weights for {len(args.folders)} folders")
    out = Path(args.out).resolve()
    if any(Path(f).resolve() == out for f in args.folders):
        ap.error("--out: is one of the input folders (inputs are never overwritten)")

    from face3d.errors import Face3DError
    from face3d.train.average import soup

    try:
        net = soup(args.folders, args.weights)
    except Face3DError as err:
        print(f"soup_regressor: error: {err}", file=sys.stderr)
        return err.code
    except ValueError as err:
        ap.error(str(err))
    net.save_pretrained(out)
    print(f"{len(args.folders)} checkpoints averaged into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
