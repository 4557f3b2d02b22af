"""Building the DefGAN training-data cache (:mod:`editing.train.gan_data`): fit the largest face of
each photo, edit it in 3D to its own expression and to drawn targets, and append aligned crops to
resumable shards.
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

from editing.api import EditContext
from editing.edit3d import EditConfig, Editor3D
from editing.expressions import ExpressionSpec, load_presets
from editing.gan.crop import aligned_box, crop_mask_uint8, crop_matrix, crop_square
from editing.gan.selection import select_evenly
from editing.train.gan_data import BASE_KEYS, CACHE_VERSION, SHARD_KEYS, CacheSample, DataConfig, read_index
from face3d.batch import BatchItem, BatchSummary, ItemOutcome, collect_items, run_batch
from face3d.crop import transform_points
from face3d.errors import Face3DError, InputError
from face3d.fit import fit_image
from face3d.io import atomic_write_json, atomic_write_npz, read_image


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
    source = fit.expression[0].detach().cpu().double().numpy()
    common = dict(
        photo=crop_square(image, box, S),
        y_src=source.astype(np.float32),
        yaw=float(fit.yaw_pitch_roll[0, 0]),
        box=np.asarray(box, np.float32),
        landmarks=transform_points(crop_matrix(box, S), lm).astype(np.float32),
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
        mask=crop_mask_uint8(alpha, box, S),
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


# ------------------------------------------------------------------ config
#: DataConfig fields that do not change a sample: a cache may be resumed or extended with others.
FREE_FIELDS = ("max_images", "shard_size")


def _config_payload(config: DataConfig, expression_names) -> dict:
    return {
        "version": CACHE_VERSION,
        "data": json.loads(json.dumps(dataclasses.asdict(config))),
        "expression_names": list(expression_names),
    }


def _sample_defining(payload: dict, free: tuple[str, ...]) -> dict:
    data = {k: v for k, v in payload.get("data", {}).items() if k not in free}
    return {**payload, "data": data}


def check_or_write_config(cache_dir: Path, payload: dict, free: tuple[str, ...] = FREE_FIELDS) -> None:
    """Write a training cache's ``config.json`` (``{"version", "data", "expression_names"}``), or,
    when one is there, check that it was built with the same settings but the ``free`` fields of
    ``data`` (those that do not change a sample). Shared by the GAN, cycle and flow caches.

    Raises:
        InputError: an unreadable config, or one with other sample-defining settings.
    """
    path = cache_dir / "config.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"{path}: unreadable cache config ({err})") from None
        if _sample_defining(old, free) != _sample_defining(payload, free):
            diff = [
                k
                for k in payload["data"]
                if k not in free and old.get("data", {}).get(k) != payload["data"][k]
            ]
            raise InputError(
                f"{cache_dir} was built with other settings ({', '.join(diff) or 'version/model'} differ); "
                "use another --out folder or the same settings"
            )
    atomic_write_json(path, payload)


def relative_name(path: Path, roots: list[Path]) -> str:
    r = path.resolve()
    for root in roots:
        try:
            return r.relative_to(root).as_posix()
        except ValueError:
            continue
    return path.name


# ------------------------------------------------------------------ build
def failure_reason(err: Exception) -> str:
    return str(err) if isinstance(err, Face3DError) else f"{type(err).__name__}: {err}"


class ShardWriter:
    """Appends samples to the shards of ``cache_dir`` and records every file in ``index.jsonl``
    (a shard's samples are listed once the shard is written).

    Args:
        shard_size: samples per shard; records: the index's records so far (numbering continues).
        stack: samples -> the shard's arrays (each sample has a ``name``).
    """

    def __init__(self, cache_dir: Path, shard_size: int, records: list[dict], stack):
        self.cache_dir, self.shard_size, self.stack = cache_dir, shard_size, stack
        shard_ids = [int(r["shard"]) for r in records if r.get("status") == "ok"]
        self.shard = max(shard_ids, default=-1) + 1
        self.written = 0
        self.buffer: list = []
        self.index = open(cache_dir / "index.jsonl", "a", encoding="utf-8")  # noqa: SIM115 (close())

    def log(self, record: dict) -> None:
        self.index.write(json.dumps(record) + "\n")
        self.index.flush()

    def failed(self, name: str, reason: str) -> None:
        self.log({"name": name, "status": "failed", "reason": reason})

    def add(self, sample) -> None:
        self.buffer.append(sample)
        if len(self.buffer) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        path = self.cache_dir / f"shard_{self.shard:05d}.npz"
        atomic_write_npz(path, **self.stack(self.buffer))
        for s in self.buffer:
            self.log({"name": s.name, "status": "ok", "shard": self.shard})
        self.shard += 1
        self.written += len(self.buffer)
        self.buffer.clear()

    def close(self) -> None:
        self.flush()
        self.index.close()


def _selected_items(inputs: list[str], config: DataConfig) -> tuple[list[BatchItem], list]:
    """The image files of ``inputs`` the cache draws (``config.max_images``) and the input problems."""
    items, problems = collect_items(inputs)
    return [items[i] for i in select_evenly(len(items), config.max_images)], problems


def _cache_editor(ctx: EditContext | None, config: DataConfig) -> tuple[EditContext, Editor3D]:
    """``ctx`` (default: built from the installed model) and its editor at ``config.texture_size``."""
    if ctx is None:
        ctx = EditContext.from_dir(config=EditConfig(texture_size=config.texture_size))
    editor = ctx.editor
    if config.renders and tuple(editor.config.texture_size) != config.texture_size:
        editor = Editor3D(editor.model, dataclasses.replace(editor.config, texture_size=config.texture_size))
    return ctx, editor


def _fit_and_sample(image: np.ndarray, name: str, ctx: EditContext, editor, config: DataConfig, presets):
    """Fit the largest face of ``image`` and make its :class:`CacheSample`."""
    faces = fit_image(
        image, ctx.fit_model, ctx.fit_config, ctx.detector, max_faces=1, regressor=ctx.regressor
    )
    if not faces:
        raise InputError("no face found")
    names = tuple(ctx.fit_model.expression_names)
    specs = sample_targets(name, config, names, presets)
    return make_sample(image, faces[0], specs, names, editor, name, config)


def _cache_summary(cache_dir: Path, items: list, problems: list, batch: BatchSummary, written: int):
    total = sum(1 for r in read_index(cache_dir) if r.get("status") == "ok")
    summary = CacheSummary(
        images=len(items),
        processed=batch.processed + len(batch.failures) - len(problems),
        skipped=batch.skipped,
        samples=written,
        total_samples=total,
        failures=batch.failures,
        median_ms=batch.median_ms.get("image", float("nan")),
        seconds=batch.seconds,
    )
    atomic_write_json(cache_dir / "summary.json", dataclasses.asdict(summary))
    return summary


def fill_shards(
    cache_dir: Path,
    inputs: list[str],
    items: list[BatchItem],
    problems: list,
    shard_size: int,
    stack,
    make,
    desc: str,
    progress: bool = True,
    skip_reason: str = "",
) -> tuple[BatchSummary, int]:
    """The batch every training cache is built by: ``make(image, name)`` per image of ``items``
    not yet in ``index.jsonl``, its sample appended to the shards of ``cache_dir`` (``stack``:
    samples -> arrays); None is recorded as skipped (``skip_reason``), an error or an unreadable
    file as failed with its reason, and the run goes on. Returns (the batch summary, samples
    written in this run)."""
    records = read_index(cache_dir)
    done = {r["name"] for r in records}
    roots = [Path(p).resolve() for p in inputs if Path(p).is_dir()]
    name_of = {item.path: relative_name(item.path, roots) for item in items}
    writer = ShardWriter(cache_dir, shard_size, records, stack)

    def process(item: BatchItem, image) -> ItemOutcome:
        name, t0 = name_of[item.path], time.perf_counter()
        try:
            sample = make(image, name)
        except Exception as err:
            writer.failed(name, failure_reason(err))
            raise
        if sample is None:
            writer.log({"name": name, "status": "skipped", "reason": skip_reason})
        else:
            writer.add(sample)
        ms = (time.perf_counter() - t0) * 1e3
        return ItemOutcome(outputs=int(sample is not None), timings_ms={"image": [ms]})

    def prepare(item: BatchItem):
        try:
            return read_image(item.path)
        except Exception as err:
            writer.failed(name_of[item.path], failure_reason(err))
            raise

    try:
        for inp, reason in problems:
            if inp not in done:
                writer.failed(inp, reason)
        batch = run_batch(
            items, process, prepare, lambda it: name_of[it.path] in done, 1, desc, problems, progress
        )
    finally:
        writer.close()
    return batch, writer.written


def build_cache(
    inputs: list[str],
    cache_dir: str | os.PathLike,
    config: DataConfig = DataConfig(),
    ctx: EditContext | None = None,
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
    cache_dir = Path(cache_dir)
    items, problems = _selected_items(inputs, config)
    ctx, editor = _cache_editor(ctx, config)
    cache_dir.mkdir(parents=True, exist_ok=True)
    check_or_write_config(cache_dir, _config_payload(config, ctx.fit_model.expression_names))
    presets = load_presets()
    batch, written = fill_shards(
        cache_dir,
        inputs,
        items,
        problems,
        config.shard_size,
        lambda b: stack_samples(b, config.renders),
        lambda image, name: _fit_and_sample(image, name, ctx, editor, config, presets),
        "gan cache",
        progress,
    )
    return _cache_summary(cache_dir, items, problems, batch, written)
