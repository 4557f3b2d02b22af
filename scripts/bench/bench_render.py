"""Rasteriser benchmark: FastMeshRasterizer vs PyTorch3D's CPU MeshRasterizer on the ICT head.

    .venv/bin/python scripts/bench/bench_render.py --sizes 256 512 --repeats 7 --out out/bench_render.json

Both backends rasterise the same posed ICT face+head mesh (22,288 triangles) in the same run.
"forward" is the rasteriser call with vertices that require grad; "forward+backward" adds a
photometric-like loss (vertex colours interpolated with the fragments' barycentrics against a
target, plus a small depth term) and its backward pass to the vertices. Medians of the repeats;
the fast backend gets one untimed warm-up call (numba compilation, reported as ``first_call_ms``).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch
from pytorch3d.ops import interpolate_face_attributes
from pytorch3d.renderer import MeshRasterizer, RasterizationSettings
from pytorch3d.structures import Meshes

from face3d.camera import (
    camera_rotation,
    euler_to_pose_matrix,
    pytorch3d_cameras,
    to_camera,
    to_pytorch3d_view,
)
from face3d.io import atomic_write_json
from face3d.model import MorphableModel
from face3d.render.fast import FastMeshRasterizer

BACKENDS = {"fast": FastMeshRasterizer, "pytorch3d": MeshRasterizer}


def posed_head(model: MorphableModel, size: int, yaw_deg: float, focal: float):
    """(V, 3) PyTorch3D view-space vertices of the template at 60 cm and matching cameras."""
    yaw, zero = torch.tensor([math.radians(yaw_deg)]), torch.zeros(1)
    R = camera_rotation(euler_to_pose_matrix(yaw, zero, zero))
    verts = to_pytorch3d_view(to_camera(model.template[None], R, torch.tensor([[0.0, 0.0, 60.0]])))[0]
    f = focal * size / 256
    cams = pytorch3d_cameras(torch.tensor([[f, f, (size - 1) / 2, (size - 1) / 2]]), (size, size))
    return verts, cams


def time_backend(cls, verts, faces, cams, size: int, repeats: int, colours) -> dict:
    """Median forward and forward+backward milliseconds of one backend."""
    rast = cls(cams, RasterizationSettings(image_size=size, blur_radius=0.0, faces_per_pixel=1, bin_size=0))
    target = torch.full((1, size, size, 3), 0.25)

    def forward():
        v = verts.detach().clone().requires_grad_()
        return v, rast(Meshes([v], [faces]))

    def forward_backward():
        v, frags = forward()
        img = interpolate_face_attributes(frags.pix_to_face, frags.bary_coords, colours[faces])[..., 0, :]
        covered = frags.pix_to_face[..., 0] >= 0
        loss = ((img - target) ** 2).sum() + 1e-3 * frags.zbuf[..., 0][covered].sum()
        loss.backward()
        return v.grad

    out = {"repeats": repeats}
    if cls is FastMeshRasterizer:
        t0 = time.perf_counter()
        frags = forward()[1]
        out["first_call_ms"] = round((time.perf_counter() - t0) * 1e3, 1)
        out["covered_pixels"] = int((frags.pix_to_face >= 0).sum())
    for name, fn in (("forward", forward), ("forward_backward", forward_backward)):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        out[f"{name}_ms"] = round(statistics.median(times), 2)
        out[f"{name}_images_per_s"] = round(1e3 / statistics.median(times), 2)
    return out


def markdown(rows: list[dict]) -> str:
    lines = [
        "| size | pass | fast ms | fast img/s | PyTorch3D ms | PyTorch3D img/s | speed-up |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        for name, label in (("forward", "forward"), ("forward_backward", "forward+backward")):
            f, p = r["fast"], r["pytorch3d"]
            lines.append(
                f"| {r['size']}² | {label} | {f[name + '_ms']:.1f} | {f[name + '_images_per_s']:.1f} | "
                f"{p[name + '_ms']:.0f} | {p[name + '_images_per_s']:.2f} | {r['speedup_' + name]:.0f}x |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats of the fast backend")
    ap.add_argument("--p3d-repeats", type=int, default=3, help="timed repeats of PyTorch3D up to 256 px")
    ap.add_argument(
        "--p3d-repeats-large", type=int, default=1, help="timed repeats of PyTorch3D above 256 px"
    )
    ap.add_argument("--yaw", type=float, default=20.0, help="head yaw, degrees")
    ap.add_argument(
        "--focal", type=float, default=1000.0, help="focal in pixels at 256 px (60 cm: face fills)"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch (and z-buffer) threads; default torch's")
    ap.add_argument("--out", default="out/bench_render.json")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = MorphableModel.from_dir()
    faces = model.faces
    t = model.template
    colours = torch.stack([torch.sin(t[:, 0] * 0.5), torch.cos(t[:, 1] * 0.4), torch.sin(t[:, 2] * 0.3)], -1)
    meta = {
        "mesh": {"vertices": int(t.shape[0]), "faces": int(faces.shape[0])},
        "yaw_deg": args.yaw,
        "focal_px_at_256": args.focal,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "torch": torch.__version__,
    }
    rows = []
    for size in args.sizes:
        verts, cams = posed_head(model, size, args.yaw, args.focal)
        row = {"size": size}
        for name, cls in BACKENDS.items():
            reps = (
                args.repeats
                if name == "fast"
                else args.p3d_repeats
                if size <= 256
                else args.p3d_repeats_large
            )
            row[name] = time_backend(cls, verts, faces, cams, size, reps, colours)
            print(f"{size}px {name}: {row[name]}", flush=True)
        for key in ("forward", "forward_backward"):
            row[f"speedup_{key}"] = round(row["pytorch3d"][f"{key}_ms"] / row["fast"][f"{key}_ms"], 1)
        rows.append(row)
    meta["loadavg_end"] = os.getloadavg()
    table = markdown(rows)
    atomic_write_json(args.out, {"meta": meta, "results": rows, "table": table})
    print(table)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
