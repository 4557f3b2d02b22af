"""``face3d compare`` on the dev sets: a stratified AFLW2000-3D sample and an LFW subset.

    .venv/bin/python scripts/bench/compare_sets.py aflw --per-bin 60 --out out/compare/aflw
    .venv/bin/python scripts/bench/compare_sets.py lfw --n 30 --exclude-index out/gan_cache/index.jsonl \
        --out out/compare/lfw

AFLW: ``--per-bin`` images per ground-truth |yaw| bin of the ``--split`` half (default
``heldout``, the half the shipped regressor was not fine-tuned on; the same stratified draw as
``scripts/bench/bench_fit.py --split heldout``), binned by the ground-truth yaw. LFW: the first photo
of every k-th person (sorted), skipping people with any photo in the GAN training cache
(``--exclude-index``, or ``--exclude-cache-selection 1200`` for the shipped generators' cache
without it at hand; ``--fitter-heldout``: and only people the regression network never saw), binned
by the fitted yaw. ``--shard i/n`` processes every n-th input (run
n processes into the same ``--out``, then once more without ``--shard`` and with ``--resume`` to
write the combined report). ``--fer``: the FER2013 npz whose class medians the completeness is
measured toward (``--resume`` on a run made before completeness and speckles adds them without
editing again).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from editing.api import EditContext
from editing.compare.run import CompareOptions, aflw_yaws, check_methods, compare_folder, parse_methods
from editing.expressions import ARKIT_NAMES, parse_expressions
from face3d.eval.aflw import SPLITS, load_aflw, select_split, stratified
from face3d.eval.lfw import is_heldout

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"  # ../shared beside the checkout


def aflw_inputs(folder: Path, per_bin: int, split: str = "all") -> list[Path]:
    return [s.image_path for s in stratified(select_split(load_aflw(folder), split), per_bin)]


def lfw_inputs(
    folder: Path,
    n: int,
    exclude_index: Path | None,
    exclude_selection: int | None = None,
    fitter_heldout: bool = False,
) -> list[Path]:
    """``n`` LFW people spread over the sorted list, one photo each, none of them a person of the GAN
    cache: those in its ``exclude_index`` (``index.jsonl``), or all that a cache of
    ``--max-images exclude_selection`` built from ``folder`` selects (no cache needed); with
    ``fitter_heldout``, only people the regression network never saw (:func:`face3d.eval.lfw.is_heldout`)."""
    banned: set[str] = set()
    if exclude_index is not None:
        for line in exclude_index.read_text().splitlines():
            if line.strip():
                banned.add(Path(json.loads(line)["name"]).parent.name)
    if exclude_selection is not None:
        from editing.gan.selection import selected_images

        banned.update(p.parent.name for p in selected_images([str(folder)], exclude_selection))
    people = sorted(
        p
        for p in folder.iterdir()
        if p.is_dir() and p.name not in banned and (not fitter_heldout or is_heldout(p.name))
    )
    step = max(1, len(people) // max(n, 1))
    out = []
    for p in people[::step]:
        imgs = sorted(p.glob("*.jpg"))
        if imgs:
            out.append(imgs[0])
        if len(out) == n:
            break
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("set", choices=("aflw", "lfw"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--per-bin", type=int, default=60, help="AFLW: images per |yaw| bin")
    ap.add_argument("--n", type=int, default=30, help="LFW: number of photos")
    ap.add_argument(
        "--split", choices=SPLITS, default="heldout", help="AFLW: the dev half (the regressor saw 'train')"
    )
    ap.add_argument("--exclude-index", type=Path, default=None, help="LFW: GAN cache index.jsonl to hold out")
    ap.add_argument(
        "--exclude-cache-selection",
        type=int,
        default=None,
        metavar="N",
        help="LFW: hold out the people a GAN cache built with --max-images N selects (needs no cache)",
    )
    ap.add_argument(
        "--fitter-heldout",
        action="store_true",
        help="LFW: only people the regression network never saw (its held-out persons)",
    )
    ap.add_argument("--expressions", default="happy,sad,surprise")
    ap.add_argument("--methods", default="2d,3d,3d-gan")
    ap.add_argument("--shard", default=None, help="i/n: every n-th input, starting at i")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument(
        "--fer",
        default=str(DATA / "fer2013" / "fer2013_48.npz"),
        help="FER2013 npz whose class medians are the completeness references ('' for no completeness)",
    )
    ap.add_argument(
        "--fer-n", type=int, default=100, help="FER2013 test faces per class for those references"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    methods = parse_methods(args.methods)
    check_methods(methods)
    if args.set == "aflw":
        inputs = aflw_inputs(args.data / "aflw2000-3d-dev", args.per_bin, args.split)
    else:
        inputs = lfw_inputs(
            args.data / "lfw", args.n, args.exclude_index, args.exclude_cache_selection, args.fitter_heldout
        )
    if args.shard:
        i, n = (int(v) for v in args.shard.split("/"))
        inputs = inputs[i::n]
    files = [str(p) for p in inputs]
    ctx = EditContext.from_dir(refine="none")
    specs = parse_expressions(args.expressions, ARKIT_NAMES)
    truth = aflw_yaws(files) if args.set == "aflw" else None
    fer = args.fer or None
    options = CompareOptions(resume=args.resume, yaw_truth=truth, fer_faces=fer, fer_n=args.fer_n)
    summary = compare_folder(files, args.out, specs, methods, ctx, options)
    print(summary.line("rows"))
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
