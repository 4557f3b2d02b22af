"""Figure: the detection fallback's best "face" in face-free photos, one row per weights folder.

    .venv/bin/python scripts/figures/confidence_figure.py --weights runs/old/final assets/regressor \\
        --labels before shipped --out docs/fallback_negatives.png

Each panel is a face-free image of ``face3d.eval.face_free`` (skimage) with the fallback's best
refined box (``proposals.propose_faces`` at ``min_confidence=0``) and its confidence; green when
it is under the default ``ProposalConfig.min_confidence`` (rejected), red when it would be
reported as a face.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

DEFAULT_IMAGES = "coins page text chelsea rocket coffee hubble_deep_field stereo_motorcycle"


def main(argv=None) -> int:
    import cv2
    import torch

    from face3d.eval.face_free import no_face_images
    from face3d.io import write_image
    from face3d.regress.infer import LandmarkRegressor
    from face3d.regress.proposals import ProposalConfig, propose_faces

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", nargs="+", default=[None], help="weights folders, one row each")
    ap.add_argument("--labels", nargs="+", default=None, help="row labels (default: the folders)")
    ap.add_argument("--images", nargs="+", default=DEFAULT_IMAGES.split(), help="skimage names")
    ap.add_argument("--size", type=int, default=200, help="panel side, pixels")
    ap.add_argument("--out", default="docs/fallback_negatives.png")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args(argv)
    labels = args.labels or [str(w or "assets/regressor") for w in args.weights]
    if len(labels) != len(args.weights):
        print("confidence_figure: error: give one label per weights folder", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    images = dict(no_face_images())
    unknown = [n for n in args.images if n not in images]
    if unknown:
        print(
            f"confidence_figure: error: not a face-free image of face3d.eval.face_free: {unknown}",
            file=sys.stderr,
        )
        return 2
    threshold = ProposalConfig().min_confidence
    rows = []
    for w, label in zip(args.weights, labels, strict=True):
        reg = LandmarkRegressor.from_pretrained(w, flip=True)
        panels = []
        for name in args.images:
            im = images[name]
            best = propose_faces(im, reg, ProposalConfig(min_confidence=0.0))
            k = args.size / max(im.shape[:2])
            panel = np.full((args.size, args.size, 3), 255, np.uint8)
            small = cv2.resize(
                im, (round(im.shape[1] * k), round(im.shape[0] * k)), interpolation=cv2.INTER_AREA
            )
            panel[: small.shape[0], : small.shape[1]] = small
            text = "no window"
            if best:
                p = best[0]
                colour = (220, 30, 30) if p.confidence >= threshold else (30, 170, 30)
                x0, y0, x1, y1 = (int(round(v * k)) for v in p.landmark_box)
                cv2.rectangle(panel, (x0, y0), (x1, y1), colour, 2)
                text = f"{p.confidence:.5f}"
            cv2.rectangle(panel, (0, args.size - 18), (args.size, args.size), (255, 255, 255), -1)
            cv2.putText(
                panel, text, (4, args.size - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA
            )
            panels.append(panel)
        strip = np.full((22, args.size * len(panels), 3), 255, np.uint8)
        cv2.putText(strip, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        rows += [strip, np.concatenate(panels, 1)]
    write_image(args.out, np.concatenate(rows, 0))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
