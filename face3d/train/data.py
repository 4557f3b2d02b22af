"""Synthetic training data for the landmark/3DMM regressor ("face profiling", as 300W-LP).

Each LFW photo is fitted (:func:`face3d.fit.fit_image`), its colours are sampled onto the whole
head's vertices (hidden vertices from the mirrored side, interior parts flat), and the head is
re-rendered at random poses (yaw up to +-90, pitch and roll up to +-30 degrees), expressions and
lighting over random backgrounds, cropped the way :func:`crop_transform` crops a box at
inference. Real crops of the photo itself (with its fit as ground truth) and negatives (crops
without a face) are added. Samples go to ``npz`` shards, one per block of photos, written
atomically, so an interrupted run resumes where it stopped.

Persons whose name hashes into the held-out split (:func:`is_heldout`) are never used for
training shards; tests render them to check the shipped weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from face3d.camera import FLIP, euler_degrees, euler_to_pose_matrix, project, to_camera
from face3d.crop import crop_box, crop_transform, warp_crop
from face3d.errors import InputError
from face3d.eval.lfw import is_heldout
from face3d.fit import fit_image
from face3d.ict import EYE_EXTRAS_FIRST, HEAD_LAST
from face3d.io import IMAGE_SUFFIXES, atomic_write_json, atomic_write_npz, read_image
from face3d.model import MorphableModel
from face3d.render import rasterize
from face3d.render.shading import VertexColorShader, vertex_normals
from face3d.render.texture import sample_photo, visibility
from face3d.render.texture_fill import FLAT_COLORS, mirror_vertices

KIND_RENDER, KIND_REAL, KIND_NEGATIVE = 0, 1, 2


@dataclass(frozen=True)
class DataConfig:
    """Settings of the synthetic data set.

    Attributes:
        size: side of the square crops, pixels.
        crop_scale: crop side = ``crop_scale * max(w, h)`` of the 68-landmark box.
        box_jitter: centre shift (fraction of the box's longer side) and log-scale jitter of the
            crop box, uniform in +-jitter (a detector's box is not the landmark box).
        renders_per_photo / reals_per_photo / negatives_per_photo: samples per fitted photo.
        photos_per_shard: photos per ``npz`` shard (the unit of resumption).
        max_yaw / max_pitch / max_roll: pose ranges of the renders, degrees.
        n_identity: identity weights stored (first K modes).
        max_fit_error: photos whose landmark fit error (% of the face size) exceeds this are skipped.
        profile_fraction: fraction of renders whose |yaw| is drawn uniformly from
            [``profile_min_yaw``, ``max_yaw``] (the rest: uniform in +-``max_yaw`` or near frontal).
        profile_min_yaw: lower |yaw| bound of those profile renders, degrees.
    """

    size: int = 96
    crop_scale: float = 1.5
    box_jitter: tuple[float, float] = (0.08, 0.12)
    renders_per_photo: int = 10
    reals_per_photo: int = 1
    negatives_per_photo: float = 0.6
    photos_per_shard: int = 40
    max_yaw: float = 90.0
    max_pitch: float = 30.0
    max_roll: float = 30.0
    n_identity: int = 40
    max_fit_error: float = 4.0
    profile_fraction: float = 0.0
    profile_min_yaw: float = 45.0


def list_photos(folder: Path, heldout: bool) -> list[Path]:
    """Photos of ``folder`` in the split: LFW's layout (one sub-folder per person, the person
    decides the split) or images directly in ``folder`` (each its own person)."""

    def images(d: Path) -> list[Path]:
        return [p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]

    out = [p for p in images(folder) if is_heldout(p.stem) == heldout]
    for d in sorted(folder.iterdir()):
        if d.is_dir() and is_heldout(d.name) == heldout:
            out += images(d)
    return sorted(out)


class FaceProfiler:
    """Fits photos and renders their textured heads at new poses (one per process).

    Args:
        config: :class:`DataConfig`.
        model_dir: the ICT model folder or archive (default lookup when None).
    """

    def __init__(self, config: DataConfig = DataConfig(), model_dir=None):

        self.config = config
        self.fit_model = MorphableModel.from_dir(model_dir)
        self.model = MorphableModel.from_dir(model_dir, subset="full", n_identity=self.fit_model.n_identity)
        faces = self.model.faces
        self.faces = faces[(faces < EYE_EXTRAS_FIRST).all(1)]
        self.mirror = mirror_vertices(self.model.template)
        flat = torch.full((self.model.n_vertices,), -1.0)
        self.flat = torch.zeros(self.model.n_vertices, 3)
        for region, color in FLAT_COLORS.items():
            a, b = self.model.regions[region]
            self.flat[a : b + 1] = torch.tensor(color)
            flat[a : b + 1] = 1.0
        self.is_flat = flat > 0
        self.eye = torch.zeros(self.model.n_vertices, dtype=torch.bool)
        for region in ("eyeball_left", "eyeball_right"):
            a, b = self.model.regions[region]
            self.eye[a : b + 1] = True

    # ------------------------------------------------------------------ fitting + colours
    def fit_photo(self, image: np.ndarray):
        """Fit the largest face of ``image``; returns the ``FitResult`` or None."""
        faces = fit_image(image, self.fit_model, max_faces=1)
        if not faces:
            return None
        fit = faces[0].fit
        size = float((fit.landmarks_fitted[0].amax(0) - fit.landmarks_fitted[0].amin(0)).prod().sqrt())
        if float(fit.error_px[0]) / max(size, 1.0) * 100 > self.config.max_fit_error:
            return None
        return fit

    def vertex_colors(self, image: np.ndarray, fit) -> torch.Tensor:
        """(V, 3) colours in [0, 1] of the whole head sampled from the photo (mirror-filled)."""
        verts = to_camera(self.model(fit.identity, fit.expression), fit.rotation, fit.translation)
        H, W = image.shape[:2]
        frags, _, _ = rasterize(verts, self.faces, fit.intrinsics, (H, W))
        depth, covered = frags.zbuf[..., 0], frags.pix_to_face[..., 0] >= 0
        normals = vertex_normals(verts, self.faces)
        seen = visibility(verts, fit.intrinsics, depth, covered, normals)[0]
        img = torch.from_numpy(image.astype(np.float32) / 255.0)[None]
        col = sample_photo(img, project(verts, fit.intrinsics))[0]
        seen = seen & (~self.is_flat | self.eye)  # eyeballs may show through the lids
        mirror_seen = seen[self.mirror]
        out = torch.where(seen[:, None], col, torch.where(mirror_seen[:, None], col[self.mirror], self.flat))
        skin = seen[: HEAD_LAST + 1]
        mean = col[: HEAD_LAST + 1][skin].mean(0) if skin.any() else torch.full((3,), 0.5)
        known = seen | mirror_seen | self.is_flat
        out[~known] = mean
        return out

    # ------------------------------------------------------------------ samples
    def photo_records(self, rng: np.random.Generator, image: np.ndarray, fit, pool: list[np.ndarray]):
        """Every sample of one fitted photo (``renders_per_photo`` renders over backgrounds from
        ``pool``, ``reals_per_photo`` real crops, ``negatives_per_photo`` negatives on average)."""
        cfg = self.config
        colors = self.vertex_colors(image, fit)
        records = [
            self.render_sample(rng, fit, colors, random_background(rng, pool, cfg.size))
            for _ in range(cfg.renders_per_photo)
        ]
        records += [self.real_sample(rng, image, fit) for _ in range(cfg.reals_per_photo)]
        lm = fit.landmarks_fitted[0].numpy()
        n_neg = int(cfg.negatives_per_photo) + (rng.random() < cfg.negatives_per_photo % 1)
        records += [self.negative_sample(rng, image, (*lm.min(0), *lm.max(0))) for _ in range(n_neg)]
        return records

    def render_sample(self, rng: np.random.Generator, fit, colors: torch.Tensor, background: np.ndarray):
        """One render at a random pose/expression/light over ``background`` (size, size, 3) uint8."""
        import cv2

        cfg, S = self.config, self.config.size
        u = rng.uniform
        if cfg.profile_fraction and rng.random() < cfg.profile_fraction:
            yaw = rng.choice((-1.0, 1.0)) * u(min(cfg.profile_min_yaw, cfg.max_yaw), cfg.max_yaw)
        else:
            yaw = u(-cfg.max_yaw, cfg.max_yaw) if rng.random() < 0.8 else rng.normal(0, 25)
        pitch = float(np.clip(rng.normal(0, cfg.max_pitch / 2), -cfg.max_pitch, cfg.max_pitch))
        roll = float(np.clip(rng.normal(0, cfg.max_roll / 2), -cfg.max_roll, cfg.max_roll))
        ang = torch.deg2rad(torch.tensor([[float(np.clip(yaw, -cfg.max_yaw, cfg.max_yaw)), pitch, roll]]))
        R_cam = torch.diag(torch.tensor(FLIP)) @ euler_to_pose_matrix(ang[:, 0], ang[:, 1], ang[:, 2])
        expr = fit.expression.clone()
        if rng.random() < 0.6:
            expr = torch.zeros_like(expr)
            for i in rng.choice(expr.shape[1], size=rng.integers(0, 5), replace=False):
                expr[0, i] = u(0.2, 1.0)
        ident = fit.identity.clone()
        ident[:, : cfg.n_identity] += torch.from_numpy(rng.normal(0, 0.3, (1, cfg.n_identity))).float()
        tz = u(70.0, 200.0)
        t = torch.tensor([[u(-3, 3), u(-3, 3), tz]])
        verts = to_camera(self.model(ident, expr), R_cam, t)
        f = 1000.0
        K0 = torch.tensor([[f, f, 0.0, 0.0]])
        lm = project(self.model.landmarks(verts[:, : self.model.n_vertices]), K0)[0]
        lo, hi = lm.amin(0).numpy(), lm.amax(0).numpy()
        bcx, bcy, side = crop_box((*lo, *hi), cfg.crop_scale)
        side0 = side / cfg.crop_scale
        jc, js = cfg.box_jitter
        bcx, bcy = bcx + u(-jc, jc) * side0, bcy + u(-jc, jc) * side0
        side *= math.exp(u(-js, js))
        A = crop_transform(bcx, bcy, side, S)
        k = A[0, 0]
        K = torch.tensor([[f * k, f * k, A[0, 2], A[1, 2]]], dtype=torch.float32)
        img = self._shade_render(rng, verts, K, colors, background)
        if rng.random() < 0.3:
            img = cv2.GaussianBlur(img, (0, 0), u(0.4, 1.2))
        if rng.random() < 0.25:
            r = u(0.35, 0.8)
            small = cv2.resize(img, (max(8, int(S * r)),) * 2, interpolation=cv2.INTER_AREA)
            img = cv2.resize(small, (S, S), interpolation=cv2.INTER_LINEAR)
        img = self._photometric(rng, img)
        gt = project(self.model.landmarks(verts), K)[0]
        centre = project(t[:, None], K)[0, 0]
        return self._record(img, gt, R_cam[0], float(K[0, 0]) / tz, centre, ident[0], expr[0], 1, KIND_RENDER)

    def _shade_render(self, rng, verts, K, colors, background) -> np.ndarray:
        import cv2

        S = self.config.size
        frags, _, _ = rasterize(verts, self.faces, K, (S, S))
        n = vertex_normals(verts, self.faces)[0]
        light = torch.tensor([rng.normal(0, 0.6), rng.normal(-0.3, 0.5), -1.0])
        light = light / light.norm()
        amb = rng.uniform(0.45, 0.85)
        shade = amb + (1.0 - amb) * 1.4 * (n @ light).clamp(min=0)
        tint = torch.from_numpy(rng.uniform(0.85, 1.15, 3)).float()
        col = (colors * shade[:, None] * tint).clamp(0, 1)
        rgb = VertexColorShader()(frags, col[None], self.faces)[0].numpy()
        cover = (frags.pix_to_face[0, ..., 0] >= 0).numpy().astype(np.float32)
        alpha = cv2.GaussianBlur(cover, (3, 3), 0.6)[..., None]
        out = alpha * (rgb * 255.0) + (1 - alpha) * background.astype(np.float32)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def _photometric(self, rng, img: np.ndarray) -> np.ndarray:
        x = img.astype(np.float32)
        x = (x - 128) * rng.uniform(0.7, 1.3) + 128 + rng.uniform(-30, 30)
        if rng.random() < 0.15:
            x = x.mean(-1, keepdims=True).repeat(3, -1)
        x = x + rng.normal(0, rng.uniform(0, 6), x.shape)
        return np.clip(x + 0.5, 0, 255).astype(np.uint8)

    def real_sample(self, rng, image: np.ndarray, fit):
        """A jittered crop of the photo itself with its fit as ground truth."""
        cfg, S = self.config, self.config.size
        lm = fit.landmarks_fitted[0].numpy()
        bcx, bcy, side = crop_box((*lm.min(0), *lm.max(0)), cfg.crop_scale)
        side0 = side / cfg.crop_scale
        jc, js = cfg.box_jitter
        bcx, bcy = bcx + rng.uniform(-jc, jc) * side0, bcy + rng.uniform(-jc, jc) * side0
        side *= math.exp(rng.uniform(-js, js))
        A = crop_transform(bcx, bcy, side, S)
        img = self._photometric(rng, warp_crop(image, A, S))
        gt = lm @ A[:, :2].T + A[:, 2]
        K = fit.intrinsics[0].numpy()
        t = fit.translation[0].numpy()
        centre = np.array([K[0] * t[0] / t[2] + K[2], K[1] * t[1] / t[2] + K[3]]) @ A[:, :2].T + A[:, 2]
        scale = K[0] * A[0, 0] / t[2]
        return self._record(
            img, gt, fit.rotation[0], scale, centre, fit.identity[0], fit.expression[0], 1, KIND_REAL
        )

    def negative_sample(self, rng, image: np.ndarray, face_box) -> dict:
        """A crop of ``image`` that holds (almost) none of ``face_box``."""
        S = self.config.size
        H, W = image.shape[:2]
        x0, y0, x1, y1 = face_box
        for _ in range(20):
            side = rng.uniform(0.15, 0.6) * min(H, W)
            cx, cy = rng.uniform(side / 2, W - side / 2), rng.uniform(side / 2, H - side / 2)
            ix = max(0.0, min(x1, cx + side / 2) - max(x0, cx - side / 2))
            iy = max(0.0, min(y1, cy + side / 2) - max(y0, cy - side / 2))
            if ix * iy < 0.1 * (x1 - x0) * (y1 - y0):
                break
        img = self._photometric(rng, warp_crop(image, crop_transform(cx, cy, side, S), S))
        return self._record(
            img, np.zeros((68, 2)), torch.eye(3), 0.0, np.zeros(2), None, None, 0, KIND_NEGATIVE
        )

    def _record(self, img, lm, R, scale, centre, ident, expr, label, kind) -> dict:
        K_id = self.config.n_identity
        ident = np.zeros(K_id) if ident is None else np.asarray(ident, dtype=np.float64)[:K_id]
        expr = np.zeros(self.model.n_expression) if expr is None else np.asarray(expr, dtype=np.float64)
        R = torch.as_tensor(np.asarray(R), dtype=torch.float32)

        return {
            "image": img,
            "landmarks": np.asarray(lm, np.float32),
            "rotation": R.numpy(),
            "euler": euler_degrees(R[None])[0].numpy().astype(np.float32),
            "scale": np.float32(scale),
            "centre": np.asarray(centre, np.float32),
            "identity": ident.astype(np.float32),
            "expression": expr.astype(np.float32),
            "label": np.uint8(label),
            "kind": np.uint8(kind),
        }


def random_background(rng, pool: list[np.ndarray], size: int) -> np.ndarray:
    """A random crop of a photo of the pool (resized), or noise / a gradient."""
    import cv2

    r = rng.random()
    if r < 0.75 and pool:
        img = pool[rng.integers(len(pool))]
        H, W = img.shape[:2]
        side = int(rng.uniform(0.2, 1.0) * min(H, W))
        x, y = rng.integers(0, W - side + 1), rng.integers(0, H - side + 1)
        return cv2.resize(img[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)
    if r < 0.9:
        g = np.linspace(0, 1, size)[None, :, None] * rng.uniform(0, 255, 3) + rng.uniform(0, 255, 3) * 0.5
        g = np.repeat(g, size, 0)
        return np.clip(g, 0, 255).astype(np.uint8)
    noise = rng.uniform(0, 255, (size // 8, size // 8, 3)).astype(np.uint8)
    return cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)


def stack_records(records: list[dict]) -> dict[str, np.ndarray]:
    """List of sample dicts -> dict of stacked arrays (the shard layout)."""
    return {k: np.stack([r[k] for r in records]) for k in records[0]}


def generate(
    lfw: str | Path,
    out: str | Path,
    config: DataConfig = DataConfig(),
    max_photos: int | None = None,
    seed: int = 0,
    worker: int = 0,
    workers: int = 1,
    heldout: bool = False,
    progress: bool = True,
    model_dir=None,
) -> list[Path]:
    """Write shards ``out/shard_NNNNN.npz`` (``out/heldout_NNNNN.npz`` with ``heldout``).

    Photos are taken in a seeded random order; shard ``i`` holds photos
    ``[i * photos_per_shard, (i + 1) * photos_per_shard)`` and is skipped when it exists, so
    reruns resume. ``worker``/``workers`` split the shards between processes.

    Returns:
        The shard paths written by this call.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", {"data": asdict(config), "lfw": str(lfw), "seed": seed})
    photos = list_photos(Path(lfw), heldout)
    order = np.random.default_rng(seed).permutation(len(photos))
    photos = [photos[i] for i in order][:max_photos]
    P = config.photos_per_shard
    prefix = "heldout" if heldout else "shard"
    shards = [i for i in range(math.ceil(len(photos) / P)) if i % workers == worker]
    todo = [i for i in shards if not (out / f"{prefix}_{i:05d}.npz").exists()]
    if not todo:
        return []
    desc = f"regressor data {worker}/{workers}"
    return write_shards(
        photos, read_image, _fit_detected, out, todo, config, seed, prefix, desc, progress, model_dir
    )[0]


def _fit_detected(prof: FaceProfiler, image: np.ndarray, _item):
    return prof.fit_photo(image)


def write_shards(items, read, fit, out, todo, config, seed, prefix, desc, progress=True, model_dir=None):
    """Write shards ``out/<prefix>_NNNNN.npz`` for the shard indices ``todo`` of ``items``
    (``config.photos_per_shard`` items each): every item is read (``read(item)`` -> (H, W, 3) uint8),
    fitted (``fit(profiler, image, item)`` -> ``FitResult`` or None to skip it) and turned into
    :meth:`FaceProfiler.photo_records` over backgrounds from up to 150 of the items.

    Returns: (the shard paths written, the number of items skipped).
    """
    from tqdm import tqdm

    P = config.photos_per_shard
    torch.set_num_threads(1)
    prof = FaceProfiler(config, model_dir)
    bg_rng = np.random.default_rng(seed + 1)
    pool = [read(items[i]) for i in bg_rng.choice(len(items), size=min(150, len(items)), replace=False)]
    written, skipped = [], 0
    bar = tqdm(total=len(todo) * P, desc=desc, unit="photo", disable=not progress)
    for i in todo:
        t0 = time.perf_counter()
        rng = np.random.default_rng([seed, i])
        records = []
        for item in items[i * P : (i + 1) * P]:
            bar.update(1)
            image = read(item)
            face = fit(prof, image, item)
            if face is None:
                skipped += 1
                continue
            records += prof.photo_records(rng, image, face, pool)
        if records:
            path = out / f"{prefix}_{i:05d}.npz"
            atomic_write_npz(path, **stack_records(records))
            written.append(path)
        bar.set_postfix(samples=len(records), skipped=skipped, s_per_shard=f"{time.perf_counter() - t0:.0f}")
    bar.close()
    return written, skipped


def check_shard_size(data: dict[str, np.ndarray], size: int, folder: str | Path) -> None:
    """Raise :class:`face3d.errors.InputError` unless the shards' crops (``data["image"]``,
    (N, S, S, 3)) are ``size`` pixels square, the network's input (:class:`RegressorConfig.size`)."""
    got = data["image"].shape[1]
    if got != size:
        raise InputError(
            f"{folder}: shards of {got} px crops for a network of {size} px input "
            f"(make the data with --size {size}, or grow the network with --size {got})"
        )


def load_shards(
    folder: str | Path, prefix: str = "shard", paths: list[Path] | None = None
) -> dict[str, np.ndarray]:
    """Concatenate ``paths`` (default every ``<prefix>_*.npz`` of ``folder``; FileNotFoundError if none)."""
    paths = sorted(Path(folder).glob(f"{prefix}_*.npz")) if paths is None else list(paths)
    if not paths:
        raise FileNotFoundError(f"no {prefix}_*.npz shards in {folder}")
    parts = []
    for p in paths:
        with np.load(p) as z:
            parts.append({k: z[k] for k in z.files})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
