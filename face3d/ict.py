"""ICT-FaceKit "Face Model Light": where to find it, how to read it, and its fixed layout.

The model may be a ``FaceXModel`` folder or an archive (``.zip``, ``.tar``, ``.tar.gz``,
``.tar.xz``) holding one anywhere inside. It is read without unpacking to disk, parsed
once into a compact ``.npz`` cache and reloaded from there afterwards.

Lookup order (:func:`find_model_source`): an explicit path, ``$FACE3D_ICT_DIR``,
``assets/ICT-FaceKit/`` in the project, ``../shared/ICT-FaceKit/FaceXModel.tar.xz``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from face3d.assets import asset_path
from face3d.errors import ModelFormatError, ModelNotFoundError
from face3d.io import atomic_write_npz

CACHE_FORMAT = 1
TEMPLATE = "generic_neutral_mesh.obj"
INDEX = "vertex_indices.json"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz")
GET_MODEL_HELP = (
    "ICT-FaceKit model not found. Get it with "
    "`git clone https://github.com/ICT-VGL/ICT-FaceKit` (or GitHub's zip download) and point "
    "face3d at its FaceXModel folder or the zip with --model-dir PATH or FACE3D_ICT_DIR=PATH, "
    "or place it under assets/ICT-FaceKit/."
)

# ---- fixed layout of the ICT model (0-based, inclusive ranges; see the project README) ----
VERTEX_REGIONS: dict[str, tuple[int, int]] = {
    "face": (0, 9408),
    "narrow_face": (0, 6705),
    "head_neck": (9409, 11247),
    "mouth_socket": (11248, 13293),
    "eye_socket_left": (13294, 13677),
    "eye_socket_right": (13678, 14061),
    "gums_tongue": (14062, 17038),
    "teeth": (17039, 21450),
    "eyeball_left": (21451, 23020),
    "eyeball_right": (23021, 24590),
    "eye_extras": (24591, 26718),
}
FACE_LAST = VERTEX_REGIONS["face"][1]
"""Last vertex of the face area (the part an expression moves)."""
HEAD_LAST = VERTEX_REGIONS["head_neck"][1]
"""Last vertex of the face, head and neck (the skin): the parts a photo shows."""
EYE_EXTRAS_FIRST = VERTEX_REGIONS["eye_extras"][0]
"""First vertex of ICT's translucent eye layers (lacrimal fluid, blend, occlusion, lashes): never drawn."""
LANDMARK_IDS: tuple[int, ...] = (
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608,
    3272, 4088, 3443, 268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978,
    4527, 4942, 4857, 1140, 2075, 1147, 4269, 3360, 1507, 1542, 1537, 1528, 1518,
    1511, 3742, 3751, 3756, 3721, 3725, 3732, 5708, 5695, 2081, 0, 4275, 6200, 6213,
    6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216, 6207, 6470, 5517, 5966,
)  # fmt: skip
INNER_LIPS: tuple[int, ...] = tuple(range(60, 68))
"""Indices, among the 68 iBUG landmarks, of the inner lip contour."""
# Extended jawline contour candidates (ordered from the ear to the chin), per side.
JAW_CONTOUR_RIGHT: tuple[int, ...] = (
    1280, 1278, 1275, 1272, 1248, 12, 820, 1834, 1902, 243, 844, 781, 1673, 2199, 801, 1447, 800,
)  # fmt: skip
JAW_CONTOUR_LEFT: tuple[int, ...] = (
    3041, 3661, 3042, 4390, 3880, 3022, 3085, 2484, 4102, 4036, 3061, 2253, 3466, 3490, 3493,
    3496, 3498,
)  # fmt: skip


@dataclass(frozen=True)
class ICTArrays:
    """The parsed model as plain arrays (V = 26,719 vertices of the full ICT head).

    Attributes:
        template: (V, 3) float32 neutral mesh, cm, y up, face toward +z.
        identity: (K_id, V, 3) float32 identity modes (identityNNN - template).
        expression: (K_exp, V, 3) float32 expression deltas, ARKit-named, weights in [0, 1].
        expression_names: K_exp names in ``vertex_indices.json`` order.
        faces: (F, 3) int64 triangles (quads split along their 0-2 diagonal).
        face_uvs: (F, 3) int64 indices into ``uvs`` for each triangle corner.
        uvs: (T, 2) float32 texture coordinates, origin bottom-left as in OBJ.
        face_polygon: (F,) int64 index of the OBJ polygon each triangle came from.
    """

    template: np.ndarray
    identity: np.ndarray
    expression: np.ndarray
    expression_names: tuple[str, ...]
    faces: np.ndarray
    face_uvs: np.ndarray
    uvs: np.ndarray
    face_polygon: np.ndarray


# ------------------------------------------------------------------------------ lookup
def _project_root() -> Path:
    return Path(__file__).resolve().parent.parent


def default_search_paths() -> list[Path]:
    """Where the model is looked for when no path is given, in order (env var first)."""
    paths = []
    env = os.environ.get("FACE3D_ICT_DIR")
    if env:
        paths.append(Path(env).expanduser())
    root = _project_root()
    paths.append(asset_path("ICT-FaceKit"))
    paths.append(root.parent / "shared" / "ICT-FaceKit" / "FaceXModel.tar.xz")
    paths.append(Path.cwd().parent / "shared" / "ICT-FaceKit" / "FaceXModel.tar.xz")
    return paths


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _resolve(path: Path) -> Path | None:
    """A model folder or archive at or directly under ``path``, or None."""
    if _is_archive(path):
        return path
    if not path.is_dir():
        return None
    if (path / TEMPLATE).is_file():
        return path
    if (path / "FaceXModel" / TEMPLATE).is_file():
        return path / "FaceXModel"
    for child in sorted(path.iterdir()):
        if child.is_dir() and (child / "FaceXModel" / TEMPLATE).is_file():
            return child / "FaceXModel"
    archives = sorted(p for p in path.iterdir() if _is_archive(p))
    preferred = [p for p in archives if p.name.lower().startswith(("facexmodel", "ict"))]
    return (preferred or archives or [None])[0]


def find_model_source(path: str | os.PathLike | None = None) -> Path:
    """Locate the model: ``path`` if given (it must exist), else the default search paths.

    Raises:
        ModelNotFoundError: with instructions to obtain the model.
    """
    if path is not None:
        found = _resolve(Path(path).expanduser())
        if found is None:
            raise ModelNotFoundError(f"no ICT model at {path}. " + GET_MODEL_HELP)
        return found
    for candidate in default_search_paths():
        found = _resolve(candidate)
        if found is not None:
            return found
    raise ModelNotFoundError(GET_MODEL_HELP)


# ------------------------------------------------------------------------------ reading
def _wanted(name: str) -> bool:
    return name.endswith(".obj") or name == INDEX


def _iter_folder(folder: Path) -> Iterator[tuple[str, bytes]]:
    for p in sorted(folder.iterdir()):
        if p.is_file() and _wanted(p.name):
            yield p.name, p.read_bytes()


def _iter_archive(path: Path) -> Iterator[tuple[str, bytes]]:
    """Yield (basename, bytes) of the model files in the folder that holds the template."""
    if path.name.lower().endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            tmpl = [n for n in names if n.rsplit("/", 1)[-1] == TEMPLATE]
            if not tmpl:
                raise ModelFormatError(f"{path}: no {TEMPLATE} inside the archive")
            prefix = tmpl[0][: -len(TEMPLATE)]
            for n in names:
                rest = n[len(prefix) :]
                if n.startswith(prefix) and "/" not in rest and _wanted(rest):
                    yield rest, zf.read(n)
        return
    # tar: stream once (random access into a compressed tar re-decompresses); decompression
    # (which releases the GIL) runs in a thread while the caller parses what has arrived. Names
    # keep their folder ("parent/base"): parse_model picks the folder holding the template.
    for parent, base, data in _stream_tar(path):
        yield f"{parent}/{base}", data


def _stream_tar(path: Path) -> Iterator[tuple[str, str, bytes]]:
    """(parent folder, basename, bytes) of the wanted members, read ahead in a thread."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=16)

    def produce():
        try:
            with tarfile.open(path, "r|*") as tf:
                for member in tf:
                    parent, _, base = member.name.rpartition("/")
                    if member.isfile() and _wanted(base):
                        fh = tf.extractfile(member)
                        q.put((parent, base, fh.read() if fh else b""))
        except (tarfile.TarError, EOFError, OSError) as err:
            q.put(ModelFormatError(f"{path}: unreadable archive ({err})"))
        q.put(None)

    threading.Thread(target=produce, daemon=True).start()
    while (item := q.get()) is not None:
        if isinstance(item, Exception):
            raise item
        yield item


_PARSER = None


def _vertex_parser():
    """A numba-compiled scanner for the first run of ``v x y z`` lines (compiled once, in memory)."""
    global _PARSER
    if _PARSER is None:
        from numba import njit

        @njit(cache=False, nogil=True)
        def scan(buf, start, out):  # pragma: no cover - compiled
            n, i, size = 0, start, len(buf)
            while i + 1 < size and buf[i] == 118 and buf[i + 1] == 32:  # "v "
                i += 2
                for k in range(3):
                    while i < size and buf[i] == 32:
                        i += 1
                    sign = 1.0
                    if i < size and (buf[i] == 45 or buf[i] == 43):
                        sign = -1.0 if buf[i] == 45 else 1.0
                        i += 1
                    value, digits = 0.0, 0
                    while i < size and 48 <= buf[i] <= 57:
                        value = value * 10.0 + (buf[i] - 48)
                        i += 1
                        digits += 1
                    if i < size and buf[i] == 46:
                        i += 1
                        scale = 0.1
                        while i < size and 48 <= buf[i] <= 57:
                            value += (buf[i] - 48) * scale
                            scale *= 0.1
                            i += 1
                            digits += 1
                    if i < size and (buf[i] == 101 or buf[i] == 69):
                        i += 1
                        esign = 1
                        if i < size and (buf[i] == 45 or buf[i] == 43):
                            esign = -1 if buf[i] == 45 else 1
                            i += 1
                        e = 0
                        while i < size and 48 <= buf[i] <= 57:
                            e = e * 10 + (buf[i] - 48)
                            i += 1
                        value *= 10.0 ** (esign * e)
                    if digits == 0 or n >= out.shape[0]:
                        return -1 - n  # malformed (or more vertices than room)
                    out[n, k] = sign * value
                while i < size and buf[i] != 10:  # rest of the line (a 4th coordinate, "\r")
                    i += 1
                i += 1
                n += 1
            return n

        _PARSER = scan
    return _PARSER


def _vertex_block(data: bytes, name: str) -> np.ndarray:
    """The ``v x y z`` lines of an OBJ as an (N, 3) float64 array (the first contiguous run)."""
    start = 0 if data.startswith(b"v ") else data.find(b"\nv ") + 1
    if start == 0 and not data.startswith(b"v "):
        raise ModelFormatError(f"{name}: no vertices (missing or truncated OBJ)")
    out = np.empty((data.count(b"\nv ", start) + 1, 3), dtype=np.float64)
    n = _vertex_parser()(np.frombuffer(data, dtype=np.uint8), start, out)
    if n <= 0:
        raise ModelFormatError(f"{name}: malformed vertex line {-n}")
    return out[:n]


def _parse_template(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    verts = _vertex_block(data, TEMPLATE)
    text = data.decode("utf-8", errors="replace")
    uvs = np.array(re.findall(r"^vt\s+(\S+)\s+(\S+)", text, flags=re.M), dtype=np.float64)
    faces, face_uvs, polys = [], [], []
    for poly_index, line in enumerate(re.findall(r"^f\s+(.+)$", text, flags=re.M)):
        corners = [c.split("/") for c in line.split()]
        v = [int(c[0]) - 1 for c in corners]
        t = [int(c[1]) - 1 if len(c) > 1 and c[1] else v[i] for i, c in enumerate(corners)]
        for k in range(1, len(v) - 1):
            faces.append((v[0], v[k], v[k + 1]))
            face_uvs.append((t[0], t[k], t[k + 1]))
            polys.append(poly_index)
    if not faces:
        raise ModelFormatError(f"{TEMPLATE}: no faces (truncated OBJ?)")
    faces_a = np.asarray(faces, dtype=np.int64)
    if faces_a.max() >= len(verts):
        raise ModelFormatError(f"{TEMPLATE}: face index beyond the vertex count (truncated OBJ?)")
    return verts, uvs, faces_a, np.asarray(face_uvs, dtype=np.int64), np.asarray(polys)


def parse_model(files: Iterator[tuple[str, bytes]], origin: str = "") -> ICTArrays:
    """Parse the model from (name, bytes) pairs of its folder.

    Names may carry a folder (``"a/b/identity000.obj"``): the folder holding the template is
    used. Vertex blocks are parsed as the files arrive, so a streaming source overlaps its
    reading with the parsing.
    """
    where = f" in {origin}" if origin else ""
    raw: dict[str, dict[str, bytes]] = {}
    verts: dict[str, dict[str, np.ndarray | ModelFormatError]] = {}
    for name, data in files:
        parent, _, base = name.rpartition("/")
        if base in (TEMPLATE, INDEX):
            raw.setdefault(parent, {})[base] = data
        elif base.endswith(".obj"):
            try:
                verts.setdefault(parent, {})[base] = _vertex_block(data, base)
            except ModelFormatError as err:  # raised only if this file turns out to be needed
                verts.setdefault(parent, {})[base] = err
    folder = next((p for p, files_ in raw.items() if TEMPLATE in files_), None)
    if folder is None:
        raise ModelFormatError(f"missing {TEMPLATE}{where}")
    raw_f, verts_f = raw[folder], verts.get(folder, {})
    if INDEX not in raw_f:
        raise ModelFormatError(f"missing {INDEX}{where}")
    try:
        names = tuple(json.loads(raw_f[INDEX])["expressions"])
    except (ValueError, KeyError) as err:
        raise ModelFormatError(f"{INDEX}{where}: unreadable ({err})") from err
    template, uvs, faces, face_uvs, polys = _parse_template(raw_f[TEMPLATE])
    n = len(template)

    def deltas(file_names: list[str]) -> np.ndarray:
        out = np.empty((len(file_names), n, 3), dtype=np.float32)
        for i, fname in enumerate(file_names):
            v = verts_f.get(fname)
            if v is None:
                raise ModelFormatError(f"missing {fname}{where}")
            if isinstance(v, ModelFormatError):
                raise v
            if len(v) != n:
                raise ModelFormatError(f"{fname}{where}: {len(v)} vertices, expected {n} (truncated OBJ?)")
            out[i] = v - template
        return out

    id_files = sorted(k for k in verts_f if re.fullmatch(r"identity\d{3}\.obj", k))
    expected = [f"identity{i:03d}.obj" for i in range(len(id_files))]
    if id_files != expected:
        missing = sorted(set(expected) - set(id_files)) or expected[:1]
        raise ModelFormatError(f"missing {missing[0]}{where}")
    identity = deltas(id_files)
    expression = deltas([f"{name}.obj" for name in names])
    return ICTArrays(
        template=template.astype(np.float32),
        identity=identity,
        expression=expression,
        expression_names=names,
        faces=faces,
        face_uvs=face_uvs,
        uvs=uvs.astype(np.float32),
        face_polygon=polys.astype(np.int64),
    )


# ------------------------------------------------------------------------------ cache
def cache_dir() -> Path:
    """``$FACE3D_CACHE_DIR``, else ``$XDG_CACHE_HOME/face3d``, else ``~/.cache/face3d``."""
    env = os.environ.get("FACE3D_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "face3d"


def source_key(source: Path) -> str:
    """Content key: the archive's bytes; for a folder, each model file's name, size and mtime."""
    h = hashlib.sha1(f"ict-v{CACHE_FORMAT}".encode())
    if source.is_file():
        with open(source, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    else:
        for p in sorted(source.iterdir()):
            if p.is_file() and _wanted(p.name):
                st = p.stat()
                h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:20]


def load_ict_arrays(path: str | os.PathLike | None = None, use_cache: bool = True) -> ICTArrays:
    """Find, parse (or reload from cache) the ICT model.

    Args:
        path: folder or archive; None searches :func:`default_search_paths`.
        use_cache: read and write the ``.npz`` cache in :func:`cache_dir`.
    """
    source = find_model_source(path)
    cache_file = cache_dir() / f"ict-{source_key(source)}.npz" if use_cache else None
    if cache_file is not None and cache_file.is_file():
        try:
            with np.load(cache_file, allow_pickle=False) as z:
                kw = {f.name: z[f.name] for f in fields(ICTArrays)}
            kw["expression_names"] = tuple(str(s) for s in kw["expression_names"])
            return ICTArrays(**kw)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rebuilt below
    files = _iter_archive(source) if source.is_file() else _iter_folder(source)
    arrays = parse_model(files, origin=str(source))
    if cache_file is not None:
        payload = {f.name: getattr(arrays, f.name) for f in fields(ICTArrays)}
        payload["expression_names"] = np.array(arrays.expression_names)
        try:
            atomic_write_npz(cache_file, **payload)
        except OSError:
            pass  # a read-only cache location only costs speed
    return arrays
