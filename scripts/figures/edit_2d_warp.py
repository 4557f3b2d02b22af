#!/usr/bin/env python
"""The ``2d-warp`` baseline's picture and its speed, on held-out AFLW2000-3D faces.

    nice -n 10 .venv/bin/python scripts/figures/edit_2d_warp.py --out docs/edit_2d_warp.png

* ``edit_2d_warp.png``: a frontal, a ~45-degree and a profile face of the dev half's held-out split
  (rows), input | happy | surprise | open_mouth (each the warp's work crop, 256 px high).
* Prints the warp's time per face and target (detection and dlib's landmarks excluded) over the
  first ``--n-timed`` held-out faces of the [0, 30) bin that dlib finds (median and max, ms; wall
  clock and this process's CPU time, which a busy machine inflates less).

Only dlib's detector and landmarks and the shipped 2D expression model are used (no 3D model).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from editing.expressions import ARKIT_NAMES, parse_expressions
from editing.warp2d import Warp2D, landmark_faces
from face3d.detect import FaceDetector
from face3d.eval.aflw import load_aflw, select_split
from face3d.fit.pipeline import detect_and_landmark
from face3d.io import read_image, write_image

TARGETS = "happy,surprise,open_mouth"


def _face(image: np.ndarray, detector):
    faces = landmark_faces(detect_and_landmark(image, detector, 1, None, None))
    return faces[0] if faces else None


def _row(image: np.ndarray, edits, height: int) -> np.ndarray:
    x0, y0, x1, y1 = edits[0].crop
    tiles = [image[y0:y1, x0:x1]] + [e.image[y0:y1, x0:x1] for e in edits]
    w = max(1, round((x1 - x0) * height / (y1 - y0)))
    return np.concatenate([cv2.resize(t, (w, height), interpolation=cv2.INTER_AREA) for t in tiles], 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--data", default="../shared/data/aflw2000-3d-dev")
    ap.add_argument("--out", default="docs/edit_2d_warp.png")
    ap.add_argument("--faces", default="image00040.jpg,image00577.jpg,image00022.jpg",
                    help="frontal, ~45 degree and profile images (file names in --data)")  # fmt: skip
    ap.add_argument("--n-timed", type=int, default=10)
    ap.add_argument("--height", type=int, default=256)
    args = ap.parse_args(argv)
    specs = parse_expressions(TARGETS, ARKIT_NAMES)
    warp, detector = Warp2D(), FaceDetector()
    held = select_split(load_aflw(args.data), "heldout")
    frontal = [s for s in held if abs(s.yaw) < 30]
    times = []
    for s in frontal:
        if len(times) >= args.n_timed:
            break
        image = read_image(s.image_path)
        face = _face(image, detector)
        if face is None:
            continue
        warp.edit_face(image, face.landmarks_detected, specs[:1])  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        warp.edit_face(image, face.landmarks_detected, specs)
        times.append(
            [(time.perf_counter() - t0) * 1e3 / len(specs), (time.process_time() - c0) * 1e3 / len(specs)]
        )
    wall, cpu = np.array(times).T
    print(f"warp per face and target ({len(times)} held-out faces of [0, 30)):")
    print(f"  wall median {np.median(wall):.1f} ms (max {wall.max():.1f})")
    print(f"  CPU time median {np.median(cpu):.1f} ms (max {cpu.max():.1f})")
    rows = []
    for name in args.faces.split(","):
        sample = next(s for s in load_aflw(args.data) if s.image_path.name == name)
        image = read_image(sample.image_path)
        face = _face(image, detector)
        if face is None:
            print(f"{name}: no face found")
            continue
        edits = warp.edit_face(image, face.landmarks_detected, specs)
        filled = [int(e.synthesized.sum()) for e in edits]
        print(f"{name}: yaw {sample.yaw:+.0f} deg, mouth pixels filled per target {filled}")
        rows.append(_row(image, edits, args.height))
    width = max(r.shape[1] for r in rows)
    grid = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], 0)
    write_image(Path(args.out), grid)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
