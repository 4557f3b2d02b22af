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
* per |yaw| bin, for records that carry a ``"grid"`` image path (a face-crop grid made with
  :func:`editing.compare.grids.face_grid`): a montage of the bin's first grids
  (``grids/bin_<bin>.png``) and every grid of the bin (:func:`editing.compare.grids.bin_sections`);
* side-by-side grids: one row per (input, target), columns input | one per method, each image
  linked by its relative path.

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

import numpy as np

from editing.compare.grids import bin_sections, image_link
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
    "speckles": MetricSpec("speckles (isolated outlier pixels)", False, digits=1),
    "completeness": MetricSpec("completeness toward FER median (dlib, near frontal)", True, digits=2),
}
"""Per-row metrics the report summarises, in display order (absent ones are skipped)."""

CSV_FIELDS = ("input", "target", "method", "yaw", "yaw_fit", "output", "error")

COMPLETENESS_NOTE = (
    "Completeness: how far the edit moved the face toward the median FER2013 face of the target's "
    "class (0: not at all, 1: all the way) on the class's measures (happy: mouth width, corner lift; "
    "surprise: lip gap, brow height), read from dlib's 68 landmarks on the input and the output "
    "inside the input's landmark box, in inter-ocular units. dlib's landmark reading is valid near "
    "frontal only: the [30,60) and [60,90] bins are indicative at best. Pooled: per measure the "
    "summed change over the summed gap of the faces, with a bootstrap 95 % interval over faces."
)
"""What the completeness numbers are (the report's notes and ``summary.md``)."""


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


def check_images(root: str | os.PathLike, paths) -> None:
    """Raise :class:`Face3DError` naming the images (relative to ``root``) that do not exist."""
    root = Path(root)
    missing = sorted({p for p in paths if p is not None and not (root / p).is_file()})
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise Face3DError(
            f"report: {len(missing)} image(s) missing under {root}: {', '.join(missing[:5])}{more}"
        )


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


def _plots(out_dir: Path, rows: list[dict], summary: dict, seed: int) -> list[str]:
    """:func:`plot_metric` of every summarised metric that has rows with a yaw: their paths."""
    plots = []
    for metric in summary:
        if any(r.get("yaw") is not None and r.get(metric) is not None for r in rows):
            rel = f"plots/{metric}_vs_yaw.png"
            plot_metric(rows, metric, out_dir / rel, seed)
            plots.append(rel)
    check_images(out_dir, plots)
    return plots


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


def summary_markdown(
    summary: dict,
    kid: dict | None = None,
    metrics: list[str] | None = None,
    kid_bins: dict | None = None,
    completeness: dict | None = None,
) -> str:
    """A Markdown table of :func:`summary_table`'s means (rows: method x |yaw| bin, columns:
    ``metrics``, default all present), the bootstrap 95 % interval after each mean, then the KID
    table (``kid``: method -> values, as ``summary.json`` holds it; ``kid_bins``: |yaw| bin ->
    method -> values) and the pooled completeness table
    (:func:`editing.compare.setlevel.completeness_table`) if given."""
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
        lines += ["", _render(_KID_HEAD, _kid_rows(kid, kid_bins), 2, True)]
    if completeness:
        lines += [
            "",
            COMPLETENESS_NOTE,
            "",
            _render(_COMPLETENESS_HEAD, _completeness_rows(completeness), 3, True),
        ]
    return "\n".join(lines) + "\n"


def _render(head: list[str], rows: list[list[str]], left: int, markdown: bool) -> str:
    """A table of preformatted cells as Markdown or HTML (cells escaped); the first ``left``
    columns left-aligned, the others right-aligned."""
    if markdown:
        cells = [[c.replace("|", "\\|") for c in row] for row in (head, *rows)]
        rule = "|" + "".join("---|" if i < left else "---:|" for i in range(len(head)))
        return "\n".join(
            ["| " + " | ".join(cells[0]) + " |", rule, *("| " + " | ".join(c) + " |" for c in cells[1:])]
        )

    def tr(cells: list[str], tag: str) -> str:
        attrs = [' class="l"' if i < left else "" for i in range(len(cells))]
        tds = (f"<{tag}{a}>{html.escape(c)}</{tag}>" for a, c in zip(attrs, cells, strict=True))
        return "<tr>" + "".join(tds) + "</tr>"

    return "<table>" + tr(head, "th") + "".join(tr(r, "td") for r in rows) + "</table>"


def _by_bin(table: dict, by_bin: dict | None) -> list[tuple[str, str, dict]]:
    """(method, group, row) of a method -> row table over all rows, then of its per-bin tables."""
    out = []
    for method, row in table.items():
        out.append((method, "all", row))
        out += [(method, b, t[method]) for b, t in (by_bin or {}).items() if method in t]
    return out


def _kid_rows(kid: dict, kid_bins: dict | None) -> list[list[str]]:
    def cell(row: dict, kind: str) -> str:
        v, sd = row.get(f"kid_{kind}"), row.get(f"kid_{kind}_std")
        if not isinstance(v, float):
            return _plain(v)
        return f"{v:.4f}" if sd is None else f"{v:.4f} ± {sd:.4f}"

    return [
        [m, b, str(r.get("n", "-")), cell(r, "fer"), cell(r, "dlib")] for m, b, r in _by_bin(kid, kid_bins)
    ]


_KID_HEAD = ["method", "|yaw|", "n", "KID (FER features)", "KID (dlib descriptors)"]
_COMPLETENESS_HEAD = ["method", "|yaw|", "target", "n faces", "completeness (row median)", "pooled [95 % CI]"]


def _completeness_rows(table: dict) -> list[list[str]]:
    """Rows of :func:`editing.compare.setlevel.completeness_table` (method -> group -> target -> stats)."""
    spec, rows = METRICS["completeness"], []
    for method, groups in table.items():
        for b, targets in groups.items():
            for target, c in targets.items():
                pooled = f"{_fmt(c['pooled'], spec)} [{_fmt(c['low'], spec)}, {_fmt(c['high'], spec)}]"
                rows.append([method, b, target, str(c["n"]), _fmt(c["median"], spec), pooled])
    return rows


def comparison_notes(n_real: int, real_dir: str | None, completeness: bool) -> str:
    """The comparison report's notes (HTML): what KID is measured against, where preservation is
    measured, what speckles are and, when ``completeness``, :data:`COMPLETENESS_NOTE`."""
    source = "the inputs" if real_dir is None else html.escape(str(real_dir))
    per_bin = "that bin's inputs" if real_dir is None else "the same photos"
    notes = (
        "<p>KID: unbiased MMD&sup2; (cubic polynomial kernel) between each method's outputs and "
        f"{n_real} real photos ({source}); per |yaw| bin, the bin's outputs against {per_bin}; "
        "kid_fer on the FER classifier's 128-d penultimate features, kid_dlib on dlib's 128-d "
        "descriptors; not comparable with Inception KIDs. Preservation is measured outside the union "
        "of the 3D method's dilated face regions. Speckles: isolated outlier pixels the edit created "
        "that no nearby input pixel explains.</p>"
    )
    return notes + (f"<p>{html.escape(COMPLETENESS_NOTE)}</p>" if completeness else "")


def _extra_html(extra: dict[str, dict[str, str | float]], by_bin: dict | None = None) -> str:
    """method -> numbers (``extra``) and |yaw| bin -> method -> numbers (``by_bin``) as one table."""
    rows = _by_bin(extra, by_bin)
    cols = list(dict.fromkeys(k for _, _, v in rows for k in v))
    cells = [[m, b, *(_plain(v.get(c)) for c in cols)] for m, b, v in rows]
    return _render(["method", "|yaw|", *cols], cells, 2, False)


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
        cells = [f'<td class="l">{image_link(inp, thumb)}{html.escape(Path(inp).name)}{yaw_txt}</td>']
        cells.append(f'<td class="l">{html.escape(str(target))}</td>')
        for m in methods:
            r = by_method.get(m)
            if r is None:
                cells.append("<td>-</td>")
            elif r.get("output") is None:
                cells.append(f'<td class="fail">failed: {html.escape(str(r.get("error", "")))}</td>')
            else:
                cells.append(f"<td>{image_link(r['output'], thumb)}</td>")
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
    extra_by_bin: dict[str, dict[str, dict]] | None = None,
    completeness: dict | None = None,
) -> Path:
    """Write ``out_dir/report.html``, its plots (``out_dir/plots/<metric>_vs_yaw.png``) and per-bin
    montages (``out_dir/grids/bin_<bin>.png``) and return the report's path. The page names only
    local files (relative links): it opens offline.

    Args:
        records: per-row dicts (see the module docstring); image paths relative to ``out_dir``.
        extra: method -> data-set-level numbers (e.g. ``{"kid_fer": 0.012, "kid_fer_std": 0.003}``).
        notes: HTML shown under the title (settings, what the features are...).
        thumb: thumbnail width in pixels.
        extra_by_bin: |yaw| bin -> method -> the same numbers per bin, shown after ``extra``'s.
        completeness: pooled completeness, :func:`editing.compare.setlevel.completeness_table`.

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
    plots = _plots(out_dir, rows, summary, seed)
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
        parts += ["<h2>Data-set level</h2>", _extra_html(extra, extra_by_bin)]
    if completeness:
        table = _render(_COMPLETENESS_HEAD, _completeness_rows(completeness), 3, False)
        parts += [
            "<h2>Completeness pooled over faces</h2>",
            f"<p>{html.escape(COMPLETENESS_NOTE)}</p>",
            table,
        ]
    if plots:
        parts.append("<h2>Against yaw</h2>")
        parts += [f'<a href="{quote(p)}"><img src="{quote(p)}" width="600" alt="{p}"></a>' for p in plots]
    if any(r["grid"] is not None for r in rows):
        parts.append(bin_sections(out_dir, rows, methods))
    parts += ["<h2>Side by side</h2>", _grid_html(rows, methods, thumb), "</body></html>\n"]
    return atomic_write_text(out_dir / "report.html", "\n".join(parts))
