"""``report.html`` (+ ``metrics.csv`` and plots) from per-row metric records of a method comparison.

A record is one (input, target, method) row::

    {"input": "inputs/a.png", "target": "happy", "method": "3d", "yaw": 12.5,
     "output": "3d/a_happy.png", "identity_distance": 0.31, "psnr_bg": inf, ...}

``input`` and ``output`` are image paths, relative to the report's folder (absolute ones are made
relative); ``output`` is None for a failed row (the report shows the failure). ``yaw`` is in degrees
(None when unknown). Every other key of :data:`METRICS` present is summarised. The report holds:

* a summary table: per method and |yaw| bin (and all yaws), the mean and bootstrap 95 % interval
  of each metric (seeded, :func:`editing.compare.metrics.bootstrap_ci`);
* optional data-set-level numbers per method (e.g. KID on FER features), given as ``extra``;
* one PNG plot per metric against |yaw| (points per row, per-bin means with their intervals);
* side-by-side grids: one row per (input, target), columns input | one per method, each image
  linked by its relative path; and, for records that carry a ``"grid"`` image path (a face-crop
  grid made with :func:`face_grid`), those grids per input.

Every image the report names is checked to exist; a missing one raises :class:`Face3DError`.
"""

from __future__ import annotations

import csv
import html
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np

from editing.compare.metrics import PSNR_CAP, bin_name, summarize
from face3d.errors import Face3DError
from face3d.eval.metrics import BIN_NAMES
from face3d.io import atomic_write_bytes, atomic_write_text


@dataclass(frozen=True)
class MetricSpec:
    """How a metric is shown: label, which direction is better, clip for ``inf``, digits, percent."""

    label: str
    higher_is_better: bool
    cap: float | None = None
    digits: int = 3
    percent: bool = False


METRICS: dict[str, MetricSpec] = {
    "p_target": MetricSpec("FER p(target)", True),
    "hit": MetricSpec("FER target = argmax", True, percent=True),
    "p_target_gain": MetricSpec("FER p(target) gain", True),
    "refit_mae": MetricSpec("3DMM re-fit expression MAE (favours 3D)", False),
    "refit_gain": MetricSpec("3DMM re-fit: closer to target than input", True),
    "identity_distance": MetricSpec("dlib identity distance", False),
    "same_identity": MetricSpec("same identity (< 0.6)", True, percent=True),
    "face_detected": MetricSpec("face re-detected", True, percent=True),
    "psnr_bg": MetricSpec(f"PSNR outside face, dB (inf -> {PSNR_CAP:.0f})", True, cap=PSNR_CAP, digits=1),
    "ssim_bg": MetricSpec("SSIM outside face", True, digits=4),
    "changed_bg": MetricSpec("changed pixels outside face", False, digits=4, percent=True),
}
"""Per-row metrics the report summarises, in display order (absent ones are skipped)."""

CSV_FIELDS = ("input", "target", "method", "yaw", "yaw_fit", "output", "error")


def _rel(path, root: Path) -> str | None:
    if path is None:
        return None
    p = Path(path)
    return Path(os.path.relpath(p, root)).as_posix() if p.is_absolute() else p.as_posix()


def _fmt(value: float, spec: MetricSpec) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value * 100:.1f} %" if spec.percent else f"{value:.{spec.digits}f}"


def _img(rel: str, width: int = 160) -> str:
    src = html.escape(quote(rel))
    return f'<a href="{src}"><img src="{src}" width="{width}" loading="lazy" alt="{html.escape(rel)}"></a>'


def check_images(root: str | os.PathLike, paths) -> None:
    """Raise :class:`Face3DError` naming the images (relative to ``root``) that do not exist."""
    root = Path(root)
    missing = sorted({p for p in paths if p is not None and not (root / p).is_file()})
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise Face3DError(
            f"report: {len(missing)} image(s) missing under {root}: {', '.join(missing[:5])}{more}"
        )


def face_grid(
    image: np.ndarray,
    outputs: dict[str, dict[str, np.ndarray]],
    labels: list[str],
    box: tuple[float, float, float, float],
    size: int = 160,
    margin: float = 0.35,
) -> np.ndarray:
    """Face crops side by side: rows per target label, columns input | one per method.

    Args:
        image: (H, W, 3) uint8 input.
        outputs: method -> label -> (H, W, 3) uint8 output (same size as the input).
        labels: target labels (rows, in order).
        box: the face box ``(x0, y0, x1, y1)``; the crop is its square grown by ``margin`` per side.
        size: tile side in pixels.

    Returns:
        (len(labels) * size, (1 + len(outputs)) * size, 3) uint8.
    """
    h, w = image.shape[:2]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * (0.5 + margin)
    x0, y0 = max(0, round(cx - half)), max(0, round(cy - half))
    x1, y1 = min(w, round(cx + half)), min(h, round(cy + half))

    def tile(img: np.ndarray) -> np.ndarray:
        crop = img[y0:y1, x0:x1]
        if crop.size == 0:
            return np.zeros((size, size, 3), np.uint8)
        return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)

    rows = [
        np.concatenate([tile(image)] + [tile(outputs[m][label]) for m in outputs], axis=1) for label in labels
    ]
    return np.concatenate(rows, axis=0)


def write_metrics_csv(path: str | os.PathLike, records: list[dict]) -> Path:
    """All records as CSV (the identifying columns, then every metric column present), atomically."""
    keys = list(CSV_FIELDS)
    for r in records:
        keys += [k for k in r if k not in keys and not isinstance(r[k], (dict, list, tuple))]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(records)
    return atomic_write_text(path, buf.getvalue())


def summary_table(records: list[dict], seed: int = 0) -> dict[str, dict[str, dict[str, dict]]]:
    """metric -> method -> bin ("all" first, then |yaw| bins present) -> ``{"mean","low","high","n"}``."""
    out: dict = {}
    for metric, spec in METRICS.items():
        rows = [r for r in records if r.get(metric) is not None]
        if not rows:
            continue
        table: dict = {}
        for method in dict.fromkeys(r["method"] for r in records):
            mine = [r for r in rows if r["method"] == method]
            table[method] = summarize(mine, metric, lambda r: "all", cap=spec.cap, seed=seed)
            by_bin = summarize(mine, metric, lambda r: bin_name(r.get("yaw")), cap=spec.cap, seed=seed)
            table[method].update({b: by_bin[b] for b in (*BIN_NAMES, "unknown") if b in by_bin})
        out[metric] = table
    return out


def plot_metric(records: list[dict], metric: str, path: str | os.PathLike, seed: int = 0) -> Path:
    """PNG of ``metric`` against |yaw| per method: one point per row, per-bin mean +- 95 % CI."""
    import matplotlib  # plotting only: matplotlib is slow to import, and needs its backend set first

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = METRICS[metric]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    centres = {"[0,30)": 15.0, "[30,60)": 45.0, "[60,90]": 75.0}
    methods = list(dict.fromkeys(r["method"] for r in records))
    for i, method in enumerate(methods):
        rows = [
            r
            for r in records
            if r["method"] == method and r.get(metric) is not None and r.get("yaw") is not None
        ]
        if not rows:
            continue
        colour = f"C{i % 10}"
        ys = np.array([float(r[metric]) for r in rows])
        if spec.cap is not None:
            ys = np.clip(ys, -spec.cap, spec.cap)
        xs = np.array([abs(float(r["yaw"])) for r in rows])
        ax.scatter(xs, ys, s=10, alpha=0.35, color=colour)
        stats = summarize(rows, metric, lambda r: bin_name(r["yaw"]), cap=spec.cap, seed=seed)
        bins = [b for b in centres if b in stats]
        off = (i - (len(methods) - 1) / 2) * 2.0
        m = np.array([stats[b]["mean"] for b in bins])
        err = np.array(
            [[stats[b]["mean"] - stats[b]["low"], stats[b]["high"] - stats[b]["mean"]] for b in bins]
        ).T
        ax.errorbar(
            [centres[b] + off for b in bins], m, yerr=err, fmt="o-", color=colour, capsize=3, label=method
        )
    ax.set_xlabel("|yaw| (degrees)")
    ax.set_ylabel(spec.label)
    ax.set_xlim(0, 92)
    for edge in (30, 60):
        ax.axvline(edge, color="0.85", lw=0.8, zorder=0)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.set_title(f"{spec.label} ({'higher' if spec.higher_is_better else 'lower'} is better)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


_CSS = """body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;text-align:right}th{background:#f2f2f2}
td.l,th.l{text-align:left}.ci{color:#777;font-size:11px}.fail{color:#b00;font-size:12px;max-width:160px}
img{display:block}"""


def _summary_html(summary: dict, methods: list[str]) -> str:
    metrics = list(summary)
    bins = [
        b
        for b in ("all", *BIN_NAMES, "unknown")
        if any(b in summary[m].get(me, {}) for m in metrics for me in methods)
    ]
    head = "".join(
        f"<th>{html.escape(METRICS[m].label)} {'&uarr;' if METRICS[m].higher_is_better else '&darr;'}</th>"
        for m in metrics
    )
    rows = []
    for method in methods:
        for b in bins:
            cells = []
            for m in metrics:
                s = summary[m].get(method, {}).get(b)
                if s is None or s["n"] == 0:
                    cells.append("<td>-</td>")
                    continue
                spec = METRICS[m]
                ci = f"[{_fmt(s['low'], spec)}, {_fmt(s['high'], spec)}]"
                cells.append(f'<td>{_fmt(s["mean"], spec)} <span class="ci">{ci} n={s["n"]}</span></td>')
            rows.append(
                f'<tr><td class="l">{html.escape(method)}</td><td class="l">{b}</td>{"".join(cells)}</tr>'
            )
    return f'<table><tr><th class="l">method</th><th class="l">|yaw|</th>{head}</tr>{"".join(rows)}</table>'


def _md_cell(s: dict | None, spec: MetricSpec) -> str:
    if not s or s["n"] == 0:
        return "-"
    return f"{_fmt(s['mean'], spec)} [{_fmt(s['low'], spec)}, {_fmt(s['high'], spec)}]"


def summary_markdown(summary: dict, kid: dict | None = None, metrics: list[str] | None = None) -> str:
    """A Markdown table of :func:`summary_table`'s means (rows: method x |yaw| bin, columns:
    ``metrics``, default all present), the bootstrap 95 % interval after each mean, then the KID
    table (``kid``: method -> values, as ``summary.json`` holds it) if given."""
    metrics = [m for m in (metrics or list(summary)) if m in summary]
    methods = list(dict.fromkeys(me for m in metrics for me in summary[m]))
    bins = [
        b
        for b in ("all", *BIN_NAMES, "unknown")
        if any(b in summary[m].get(me, {}) for m in metrics for me in methods)
    ]
    arrows = {True: "↑", False: "↓"}
    lines = [
        "| method | \\|yaw\\| | n | "
        + " | ".join(f"{METRICS[m].label} {arrows[METRICS[m].higher_is_better]}" for m in metrics)
        + " |",
        "|---|---|---:|" + "---:|" * len(metrics),
    ]
    for method in methods:
        for b in bins:
            stats = [summary[m].get(method, {}).get(b) for m in metrics]
            n = max((s["n"] for s in stats if s), default=0)
            if n == 0:
                continue
            cells = [_md_cell(s, METRICS[m]) for s, m in zip(stats, metrics, strict=True)]
            lines.append(f"| {method} | {b} | {n} | " + " | ".join(cells) + " |")
    if kid:
        lines += ["", "| method | n | KID (FER features) | KID (dlib descriptors) |", "|---|---:|---:|---:|"]
        for method, row in kid.items():
            vals = []
            for kind in ("fer", "dlib"):
                v, sd = row.get(f"kid_{kind}"), row.get(f"kid_{kind}_std")
                vals.append(f"{v:.4f} ± {sd:.4f}" if isinstance(v, float) else _plain(v))
            lines.append(f"| {method} | {row.get('n', '-')} | {vals[0]} | {vals[1]} |")
    return "\n".join(lines) + "\n"


def _extra_html(extra: dict[str, dict[str, str | float]]) -> str:
    cols = list(dict.fromkeys(k for v in extra.values() for k in v))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = "".join(
        f'<tr><td class="l">{html.escape(method)}</td>'
        + "".join(f"<td>{html.escape(_plain(vals.get(c)))}</td>" for c in cols)
        + "</tr>"
        for method, vals in extra.items()
    )
    return f'<table><tr><th class="l">method</th>{head}</tr>{rows}</table>'


def _plain(v) -> str:
    if v is None:
        return "-"
    return f"{v:.5g}" if isinstance(v, float) else str(v)


def _grid_html(records: list[dict], methods: list[str], thumb: int) -> str:
    keyed: dict[tuple[str, str], dict[str, dict]] = {}
    for r in records:
        keyed.setdefault((r["input"], r["target"]), {})[r["method"]] = r
    head = "".join(f"<th>{html.escape(m)}</th>" for m in methods)
    rows = []
    for (inp, target), by_method in keyed.items():
        yaw = next((r.get("yaw") for r in by_method.values() if r.get("yaw") is not None), None)
        yaw_txt = "" if yaw is None else f"<br>yaw {float(yaw):.0f}&deg;"
        cells = [f'<td class="l">{_img(inp, thumb)}{html.escape(Path(inp).name)}{yaw_txt}</td>']
        cells.append(f'<td class="l">{html.escape(str(target))}</td>')
        for m in methods:
            r = by_method.get(m)
            if r is None:
                cells.append("<td>-</td>")
            elif r.get("output") is None:
                cells.append(f'<td class="fail">failed: {html.escape(str(r.get("error", "")))}</td>')
            else:
                cells.append(f"<td>{_img(r['output'], thumb)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table><tr><th class="l">input</th><th class="l">target</th>{head}</tr>{"".join(rows)}</table>'


def write_report(
    out_dir: str | os.PathLike,
    records: list[dict],
    extra: dict[str, dict[str, str | float]] | None = None,
    title: str = "Expression editing: method comparison",
    notes: str = "",
    thumb: int = 160,
    seed: int = 0,
) -> Path:
    """Write ``out_dir/report.html``, its plots (``out_dir/plots/<metric>_vs_yaw.png``) and return the
    report's path.

    Args:
        records: per-row dicts (see the module docstring); image paths relative to ``out_dir``.
        extra: method -> data-set-level numbers (e.g. ``{"kid_fer": 0.012, "kid_fer_std": 0.003}``).
        notes: HTML shown under the title (settings, what the features are...).
        thumb: thumbnail width in pixels.

    Raises:
        Face3DError: no records, a record lacks input/target/method, or an image it names is missing.
    """
    out_dir = Path(out_dir)
    if not records:
        raise Face3DError("report: no records to report")
    rows = []
    for r in records:
        if not all(k in r for k in ("input", "target", "method")):
            raise Face3DError(f"report: a record lacks input, target or method: {sorted(r)}")
        rows.append(
            {
                **r,
                "input": _rel(r["input"], out_dir),
                "output": _rel(r.get("output"), out_dir),
                "grid": _rel(r.get("grid"), out_dir),
            }
        )
    check_images(out_dir, [p for r in rows for p in (r["input"], r["output"], r["grid"])])
    methods = list(dict.fromkeys(r["method"] for r in rows))
    summary = summary_table(rows, seed)
    plots = []
    for metric in summary:
        if any(r.get("yaw") is not None and r.get(metric) is not None for r in rows):
            rel = f"plots/{metric}_vs_yaw.png"
            plot_metric(rows, metric, out_dir / rel, seed)
            plots.append(rel)
    check_images(out_dir, plots)
    n_inputs = len({r["input"] for r in rows})
    failed = sum(r["output"] is None for r in rows)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
        f"<p>{n_inputs} inputs, {len(rows)} rows, methods {', '.join(map(html.escape, methods))}; "
        f"{failed} failed rows. Means with bootstrap 95 % intervals (seed {seed}).</p>",
        notes,
        "<h2>Summary by method and |yaw|</h2>",
        _summary_html(summary, methods) if summary else "<p>no metrics</p>",
    ]
    if extra:
        parts += ["<h2>Data-set level</h2>", _extra_html(extra)]
    if plots:
        parts.append("<h2>Against yaw</h2>")
        parts += [f'<a href="{quote(p)}"><img src="{quote(p)}" width="600" alt="{p}"></a>' for p in plots]
    grids = list(dict.fromkeys(r["grid"] for r in rows if r["grid"] is not None))
    if grids:
        parts.append(f"<h2>Face crops</h2><p>rows: targets; columns: input | {' | '.join(methods)}</p>")
        parts += [f"<p>{html.escape(Path(g).stem)}<br>{_img(g, 120 * (1 + len(methods)))}</p>" for g in grids]
    parts += ["<h2>Side by side</h2>", _grid_html(rows, methods, thumb), "</body></html>\n"]
    return atomic_write_text(out_dir / "report.html", "\n".join(parts))
