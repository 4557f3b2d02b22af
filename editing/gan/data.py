"""The DefGAN training-data cache: aligned crops of real photos, their fitted expressions and
3D-edited renders, written in resumable shards.

Layout of ``cache_dir``::

    config.json          {"data": DataConfig, "expression_names": [...], "version": 1}
    index.jsonl          one line per processed file: {"name", "status": "ok", "shard"} or
                         {"name", "status": "failed", "reason"}
    shard_00000.npz      ``shard_size`` samples (keys: see :data:`SHARD_KEYS`)
    summary.json         the last run's :class:`CacheSummary`

Per sample (S = ``DataConfig.size``, T = ``targets_per_image``, K = 53 ARKit weights)::

    photo       (S, S, 3) uint8    aligned crop of the photo
    y_src       (K,) float32       fitted ARKit weights (model.expression_names order)
    yaw         () float32         fitted yaw, degrees
    box         (4,) float32       crop box (x0, y0, x1, y1), image pixels
    landmarks   (68, 2) float32    fitted anatomical landmarks, crop pixels
    name        () str             path relative to its input folder
    y_tgt       (T, K) float32     target weights (FaceEdit.target)
    render_src  (S, S, 3) uint8    the photo edited to its own expression (``renders`` only)
    render_tgt  (T, S, S, 3) uint8 the photo edited to each target (``renders`` only)
    mask        (S, S) uint8       0..255, where the edits may change pixels (``renders`` only)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from editing.expressions import ExpressionSpec, load_presets
from editing.gan.crop import aligned_box, crop_mask, crop_matrix, crop_square
from face3d.batch import BatchItem, ItemOutcome, make_items, run_batch
from face3d.errors import Face3DError, InputError
from face3d.io import atomic_write_json, atomic_write_npz, read_image

CACHE_VERSION = 1
BASE_KEYS = ("photo", "y_src", "yaw", "box", "landmarks", "name", "y_tgt")
RENDER_KEYS = ("render_src", "render_tgt", "mask")
SHARD_KEYS = BASE_KEYS + RENDER_KEYS


@dataclass(frozen=True)
class DataConfig:
    """How the cache is built.

    Attributes:
        size: side of the square aligned crop, pixels.
        scale: crop side as a multiple of the larger side of the fitted landmarks' box.
        targets_per_image: target expressions edited per photo (T).
        max_images: use at most this many images, spread evenly over the sorted file list
            (None: all).
        seed: seed of the target draws (each image's draw also depends on its relative path).
        shard_size: samples per ``shard_*.npz``.
        renders: store the 3D edits (``render_src``, ``render_tgt``, ``mask``); False keeps only
            the photos and fitted weights (the 2D path) and skips all rendering.
        texture_size: (Ht, Wt) of the UV atlas of the 3D edits. A quarter of the edit's default
            (512, 1024): the atlas only fills surface the photo did not show (seen surface takes the
            photo's pixels directly), so at crop size 128 it changes 0.2 % of the mask's pixels by
            more than 10 grey levels, and saves ~0.7 s per LFW image (0.53 s instead of 1.27 s).
    """

    size: int = 128
    scale: float = 1.6
    targets_per_image: int = 2
    max_images: int | None = None
    seed: int = 0
    shard_size: int = 64
    renders: bool = True
    texture_size: tuple[int, int] = (128, 256)

    def __post_init__(self):
        object.__setattr__(self, "texture_size", tuple(int(v) for v in self.texture_size))
        if self.size < 8 or self.targets_per_image < 1 or self.shard_size < 1 or self.scale <= 0:
            raise InputError(f"invalid cache settings: {self}")
        if self.max_images is not None and self.max_images < 1:
            raise InputError(f"max_images must be at least 1, got {self.max_images}")


@dataclass(frozen=True)
class CacheSample:
    """One photo's cache entry (shapes in the module docstring; render fields None without renders)."""

    photo: np.ndarray
    y_src: np.ndarray
    yaw: float
    box: np.ndarray
    landmarks: np.ndarray
    name: str
    y_tgt: np.ndarray
    render_src: np.ndarray | None = None
    render_tgt: np.ndarray | None = None
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class CacheSummary:
    """The end of a :func:`build_cache` run.

    Attributes:
        images: image files selected (after ``max_images``).
        processed: files handled in this run (samples or failures); skipped: already in the index.
        samples: samples written in this run; total_samples: samples in the whole cache.
        failures: (file, reason) of this run's failures.
        median_ms: median milliseconds per successful image (fit + edits + crops).
        seconds: wall time of the run.
    """

    images: int
    processed: int
    skipped: int
    samples: int
    total_samples: int
    failures: tuple[tuple[str, str], ...]
    median_ms: float
    seconds: float

    def line(self) -> str:
        return (
            f"{self.images} images: {self.samples} samples written ({self.total_samples} in the cache), "
            f"{self.skipped} already done, {len(self.failures)} failed; median {self.median_ms:.0f} ms "
            f"per image, {self.seconds:.1f} s"
        )


@dataclass(frozen=True)
class GanCache:
    """A loaded cache: the shards concatenated, N samples (see the module docstring).

    Attributes:
        photo: (N, S, S, 3) uint8; y_src: (N, K) float32; yaw: (N,) float32 degrees;
        box: (N, 4) float32 image pixels; landmarks: (N, 68, 2) float32 crop pixels;
        names: N relative paths; y_tgt: (N, T, K) float32.
        render_src: (N, S, S, 3) uint8; render_tgt: (N, T, S, S, 3) uint8; mask: (N, S, S) uint8
            0..255 (all three None when the cache was built without renders).
        config: the :class:`DataConfig` of the last build; expression_names: the K names.
    """

    photo: np.ndarray
    y_src: np.ndarray
    yaw: np.ndarray
    box: np.ndarray
    landmarks: np.ndarray
    names: tuple[str, ...]
    y_tgt: np.ndarray
    render_src: np.ndarray | None
    render_tgt: np.ndarray | None
    mask: np.ndarray | None
    config: DataConfig
    expression_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)


# ------------------------------------------------------------------ pure parts
def image_seed(seed: int, name: str) -> int:
    """Per-image seed from the run seed and the file's relative path (order independent)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")


def sample_targets(
    name: str, config: DataConfig, names: tuple[str, ...], presets: dict[str, dict[str, float]]
) -> list[ExpressionSpec]:
    """``config.targets_per_image`` target expressions for one image: each is, with probability
    1/2, a preset at intensity U(0.5, 1), otherwise a sparse mix of 2-4 ARKit shapes with weights
    U(0.2, 1) (replace mode). Deterministic in (seed, name)."""
    rng = np.random.default_rng(image_seed(config.seed, name))
    preset_names = sorted(presets)
    specs = []
    for k in range(config.targets_per_image):
        if preset_names and rng.random() < 0.5:
            p = preset_names[int(rng.integers(len(preset_names)))]
            specs.append(ExpressionSpec(presets[p], "replace", float(rng.uniform(0.5, 1.0)), p))
        else:
            n = int(rng.integers(2, 5))
            idx = sorted(rng.choice(len(names), n, replace=False).tolist())
            w = np.clip(rng.uniform(0.2, 1.0, n), 0.0, 1.0)
            specs.append(
                ExpressionSpec({names[i]: float(v) for i, v in zip(idx, w, strict=True)}, label=f"mix{k}")
            )
    return specs


def select_evenly(n: int, max_images: int | None) -> np.ndarray:
    """Indices of at most ``max_images`` of ``n`` sorted items, spread evenly over the list."""
    if max_images is None or max_images >= n:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_images)).astype(int))


def selected_images(inputs: list[str], max_images: int | None) -> list[Path]:
    """The image files a cache built from ``inputs`` with ``DataConfig(max_images=...)`` draws
    from (:func:`build_cache`'s selection, whether or not each one was then fitted): what a
    benchmark holds out without the cache at hand."""
    items, _ = make_items(inputs)
    return [items[i].path for i in select_evenly(len(items), max_images)]


def make_sample(
    image: np.ndarray,
    face,
    specs: list[ExpressionSpec],
    names: tuple[str, ...],
    editor,
    name: str,
    config: DataConfig,
) -> CacheSample:
    """The :class:`CacheSample` of one fitted face (:class:`FaceFit`) of ``image`` ((H, W, 3) uint8).

    ``names``: the K expression names in model order; ``editor``: an :class:`Editor3D` (unused and
    may be None when not ``config.renders``).
    """
    S = config.size
    fit = face.fit
    lm = fit.landmarks_fitted[0].detach().cpu().double().numpy()
    box = aligned_box(lm, config.scale)
    M = crop_matrix(box, S)
    source = fit.expression[0].detach().cpu().double().numpy()
    common = dict(
        photo=crop_square(image, box, S),
        y_src=source.astype(np.float32),
        yaw=float(fit.yaw_pitch_roll[0, 0]),
        box=np.asarray(box, np.float32),
        landmarks=(lm @ M[:, :2].T + M[:, 2]).astype(np.float32),
        name=name,
    )
    if not config.renders:
        tgt = np.stack([s.apply(source, names) for s in specs]).astype(np.float32)
        return CacheSample(y_tgt=tgt, **common)
    same = ExpressionSpec({}, "add", 1.0, "source")
    edits = editor.edit_face(image, face, [same, *specs])
    alpha = np.zeros(image.shape[:2], np.float32)
    for e in edits:
        alpha = np.maximum(alpha, e.alpha)
    return CacheSample(
        y_tgt=np.stack([e.target for e in edits[1:]]).astype(np.float32),
        render_src=crop_square(edits[0].image, box, S),
        render_tgt=np.stack([crop_square(e.image, box, S) for e in edits[1:]]),
        mask=(crop_mask(alpha, box, S) * 255 + 0.5).astype(np.uint8),
        **common,
    )


def stack_samples(samples: list[CacheSample], renders: bool) -> dict[str, np.ndarray]:
    """Shard arrays (leading axis N) from samples."""
    keys = SHARD_KEYS if renders else BASE_KEYS
    out = {}
    for k in keys:
        vals = [getattr(s, k) for s in samples]
        out[k] = np.array(vals, dtype=np.str_) if k == "name" else np.stack(vals)
    out["yaw"] = out["yaw"].astype(np.float32)
    return out


# ------------------------------------------------------------------ index and config
#: DataConfig fields that do not change a sample: a cache may be resumed or extended with others.
FREE_FIELDS = ("max_images", "shard_size")


def _config_payload(config: DataConfig, expression_names) -> dict:
    return {
        "version": CACHE_VERSION,
        "data": json.loads(json.dumps(dataclasses.asdict(config))),
        "expression_names": list(expression_names),
    }


def _sample_defining(payload: dict) -> dict:
    data = {k: v for k, v in payload.get("data", {}).items() if k not in FREE_FIELDS}
    return {**payload, "data": data}


def read_index(cache_dir: Path) -> list[dict]:
    """Records of ``index.jsonl`` (a torn last line from a killed run is ignored)."""
    path = cache_dir / "index.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _check_or_write_config(cache_dir: Path, payload: dict) -> None:
    path = cache_dir / "config.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"{path}: unreadable cache config ({err})") from None
        if _sample_defining(old) != _sample_defining(payload):
            diff = [
                k
                for k in payload["data"]
                if k not in FREE_FIELDS and old.get("data", {}).get(k) != payload["data"][k]
            ]
            raise InputError(
                f"{cache_dir} was built with other settings ({', '.join(diff) or 'version/model'} differ); "
                "use another --out folder or the same settings"
            )
    atomic_write_json(path, payload)


def _relative_name(path: Path, roots: list[Path]) -> str:
    r = path.resolve()
    for root in roots:
        try:
            return r.relative_to(root).as_posix()
        except ValueError:
            continue
    return path.name


# ------------------------------------------------------------------ build
def build_cache(
    inputs: list[str],
    cache_dir: str | os.PathLike,
    config: DataConfig = DataConfig(),
    ctx=None,
    progress: bool = True,
) -> CacheSummary:
    """Fit the largest face of every image of ``inputs`` (files or folders, recursive), edit it to
    its own expression and to ``targets_per_image`` drawn targets, and append aligned crops to the
    shards of ``cache_dir``. Resumes: files listed in ``index.jsonl`` are skipped.

    Args:
        ctx: an :class:`editing.api.EditContext` (default: built from the installed model); its
            editor is rebuilt when its texture size differs from ``config.texture_size``.
    Raises:
        InputError: no images found, or ``cache_dir`` holds a cache built with settings that change
            the samples (all but :data:`FREE_FIELDS`: a larger ``max_images`` extends a cache).
    """
    from editing.edit3d import Editor3D

    cache_dir = Path(cache_dir)
    items, problems = make_items(inputs)
    if not items and not problems:
        raise InputError("no images found in the inputs (jpg, jpeg, png, bmp, webp)")
    items = [items[i] for i in select_evenly(len(items), config.max_images)]
    if ctx is None:
        from editing.api import EditContext
        from editing.edit3d import EditConfig

        ctx = EditContext.from_dir(config=EditConfig(texture_size=config.texture_size))
    editor = ctx.editor
    if config.renders and tuple(editor.config.texture_size) != config.texture_size:
        editor = Editor3D(editor.model, dataclasses.replace(editor.config, texture_size=config.texture_size))
    names = tuple(ctx.fit_model.expression_names)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _check_or_write_config(cache_dir, _config_payload(config, names))
    presets = load_presets()
    records = read_index(cache_dir)
    done = {r["name"] for r in records}
    shard_ids = [int(r["shard"]) for r in records if r.get("status") == "ok"]
    state = {"shard": max(shard_ids, default=-1) + 1, "written": 0}
    roots = [Path(p).resolve() for p in inputs if Path(p).is_dir()]
    name_of = {item.path: _relative_name(item.path, roots) for item in items}
    buffer: list[CacheSample] = []
    index = open(cache_dir / "index.jsonl", "a", encoding="utf-8")  # noqa: SIM115 (closed below)

    def log(record: dict) -> None:
        index.write(json.dumps(record) + "\n")
        index.flush()

    def flush() -> None:
        if not buffer:
            return
        atomic_write_npz(
            cache_dir / f"shard_{state['shard']:05d}.npz", **stack_samples(buffer, config.renders)
        )
        for s in buffer:
            log({"name": s.name, "status": "ok", "shard": state["shard"]})
        state["shard"] += 1
        state["written"] += len(buffer)
        buffer.clear()

    def process(item: BatchItem, image) -> ItemOutcome:
        from face3d.fit import fit_image

        name = name_of[item.path]
        try:
            t0 = time.perf_counter()
            faces = fit_image(
                image, ctx.fit_model, ctx.fit_config, ctx.detector, max_faces=1, regressor=ctx.regressor
            )
            if not faces:
                raise InputError("no face found")
            specs = sample_targets(name, config, names, presets)
            sample = make_sample(image, faces[0], specs, names, editor, name, config)
            ms = (time.perf_counter() - t0) * 1e3
        except Exception as err:
            reason = str(err) if isinstance(err, Face3DError) else f"{type(err).__name__}: {err}"
            log({"name": name, "status": "failed", "reason": reason})
            raise
        buffer.append(sample)
        if len(buffer) >= config.shard_size:
            flush()
        return ItemOutcome(outputs=1, timings_ms={"image": [ms]})

    def prepare(item: BatchItem):
        try:
            return read_image(item.path)
        except Exception as err:
            reason = str(err) if isinstance(err, Face3DError) else f"{type(err).__name__}: {err}"
            log({"name": name_of[item.path], "status": "failed", "reason": reason})
            raise

    try:
        for inp, reason in problems:
            if inp not in done:
                log({"name": inp, "status": "failed", "reason": reason})
        batch = run_batch(
            items, process, prepare, lambda it: name_of[it.path] in done, 1, "gan cache", problems, progress
        )
    finally:
        flush()
        index.close()
    total = sum(1 for r in read_index(cache_dir) if r.get("status") == "ok")
    summary = CacheSummary(
        images=len(items),
        processed=batch.processed + len(batch.failures) - len(problems),
        skipped=batch.skipped,
        samples=state["written"],
        total_samples=total,
        failures=batch.failures,
        median_ms=batch.median_ms.get("image", float("nan")),
        seconds=batch.seconds,
    )
    atomic_write_json(cache_dir / "summary.json", dataclasses.asdict(summary))
    return summary


# ------------------------------------------------------------------ load
def load_cache(cache_dir: str | os.PathLike) -> GanCache:
    """Read every shard listed in ``index.jsonl`` of ``cache_dir``.

    Raises:
        InputError: the folder has no cache config or no shards.
        Face3DError: a listed shard is missing or has the wrong number of samples.
    """
    cache_dir = Path(cache_dir)
    cfg_path = cache_dir / "config.json"
    if not cfg_path.is_file():
        raise InputError(f"{cache_dir}: not a GAN cache (no config.json); build one with build_gan_cache.py")
    payload = json.loads(cfg_path.read_text())
    config = DataConfig(**payload["data"])
    counts: dict[int, int] = {}
    for r in read_index(cache_dir):
        if r.get("status") == "ok":
            counts[int(r["shard"])] = counts.get(int(r["shard"]), 0) + 1
    if not counts:
        raise InputError(f"{cache_dir}: the cache has no shards yet")
    parts: dict[str, list[np.ndarray]] = {}
    for sid in sorted(counts):
        path = cache_dir / f"shard_{sid:05d}.npz"
        if not path.is_file():
            raise Face3DError(f"{path}: listed in index.jsonl but missing")
        with np.load(path, allow_pickle=False) as z:
            if len(z["name"]) != counts[sid]:
                raise Face3DError(f"{path}: {len(z['name'])} samples, index.jsonl lists {counts[sid]}")
            for k in z.files:
                parts.setdefault(k, []).append(z[k])
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return GanCache(
        photo=arrays["photo"],
        y_src=arrays["y_src"],
        yaw=arrays["yaw"],
        box=arrays["box"],
        landmarks=arrays["landmarks"],
        names=tuple(str(n) for n in arrays["name"]),
        y_tgt=arrays["y_tgt"],
        render_src=arrays.get("render_src"),
        render_tgt=arrays.get("render_tgt"),
        mask=arrays.get("mask"),
        config=config,
        expression_names=tuple(payload["expression_names"]),
    )
