"""The ``face3d`` command: argparse subcommands, each a thin call into the library.

A user's mistake prints one line (``face3d: error: ...``) and exits non-zero; never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from face3d.errors import Face3DError


def _check_inputs(inputs) -> None:
    """Fail fast (before loading models) when the inputs hold no image at all."""
    from face3d.batch import collect_items

    collect_items(inputs)


def _device(args):
    import torch

    name = getattr(args, "device", "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise Face3DError("--device cuda: CUDA is not available on this machine")
    return torch.device(name)


def _model(args, subset: str = "face_head"):
    from face3d.model import MorphableModel

    return MorphableModel.from_dir(args.model_dir, subset=subset).to(_device(args))


def _fit_config(args):
    from face3d.fit import FitConfig

    kw = {}
    if getattr(args, "fov", None) is not None:
        kw.update(fov_deg=args.fov, fixed_fov=True)
    if getattr(args, "n_identity", None) is not None:
        kw["n_identity"] = args.n_identity
    if getattr(args, "no_silhouette", False):
        kw["silhouette"] = False
    try:
        return FitConfig(**kw)
    except ValueError as err:
        raise Face3DError(str(err)) from None


# ---------------------------------------------------------------------------------------- info
def cmd_info(args) -> int:
    import dlib
    import pytorch3d
    import torch

    import face3d
    from face3d.ict import find_model_source

    print(f"face3d     {face3d.__version__}")
    print(f"python     {sys.version.split()[0]}")
    print(f"torch      {torch.__version__} (threads: {torch.get_num_threads()})")
    print(f"pytorch3d  {pytorch3d.__version__}")
    print(f"dlib       {dlib.__version__}")
    cuda = torch.cuda.is_available()
    print(f"device     {'cuda: ' + torch.cuda.get_device_name(0) if cuda else 'cpu'}")
    from face3d.render.rasterize import resolve_backend

    print(f"rasterizer {resolve_backend('auto', torch.device('cuda' if cuda else 'cpu'))}")
    source = find_model_source(args.model_dir)  # raises ModelNotFoundError with instructions
    print(f"ICT model  {source}")
    return 0


# ---------------------------------------------------------------------------------------- fit
def cmd_fit(args) -> int:
    from face3d.fit import FolderOptions, fit_folder

    if args.max_faces is not None and args.max_faces < 1:
        raise Face3DError("--max-faces must be at least 1")
    if args.workers < 1:
        raise Face3DError("--workers must be at least 1")
    if args.fast and args.no_regressor:
        raise Face3DError("--fast is regression only: it cannot be combined with --no-regressor")
    if args.detect_fallback and args.no_regressor:
        raise Face3DError("--detect-fallback searches with the regressor: not with --no-regressor")
    if args.no_profile_views and args.no_regressor:
        raise Face3DError("--no-profile-views is a setting of the regressor: not with --no-regressor")
    if args.landmark_blend is not None and not 0.0 <= args.landmark_blend <= 1.0:
        raise Face3DError(f"--landmark-blend must be in [0, 1], got {args.landmark_blend}")
    _check_inputs(args.inputs)
    model = _model(args)
    from face3d.fit.pipeline import LandmarkConfig

    options = FolderOptions(
        landmarks=LandmarkConfig(
            use_regressor=not args.no_regressor,
            fast=args.fast,
            fallback=not args.no_regressor if args.detect_fallback is None else args.detect_fallback,
            **({} if args.landmark_blend is None else {"blend": args.landmark_blend}),
        ),
        max_faces=args.max_faces,
        bbox_file=args.bbox_file,
        resume=args.resume,
        workers=args.workers,
        ray=args.ray,
        threads=args.threads,
        write_mesh=not args.no_mesh,
        write_overlay=not args.no_overlay,
        write_ply=args.ply,
        residual=args.residual,
        photometric=args.photometric,
    )
    regressor = None if args.no_regressor else "auto"
    if args.no_profile_views:
        from face3d.fit.pipeline import default_regressor

        regressor = default_regressor(profile_views=False)
    summary = fit_folder(args.inputs, args.out, model, _fit_config(args), options, regressor=regressor)
    print(summary.line("faces"))
    for file, reason in summary.failures[:20]:
        print(f"  failed: {file}: {reason}")
    if len(summary.failures) > 20:
        print(f"  ... {len(summary.failures) - 20} more in {Path(args.out) / 'summary.json'}")
    return summary.exit_code


# ---------------------------------------------------------------------------------------- edit
def cmd_edit(args) -> int:
    from editing.api import EditContext, EditOptions, edit_folder
    from editing.edit3d import EditConfig
    from editing.expressions import ARKIT_NAMES, parse_expressions

    if args.face != "all" and not (args.face.isdigit()):
        raise Face3DError(f"--face must be 'all' or a face index, got {args.face!r}")
    if args.workers < 1:
        raise Face3DError("--workers must be at least 1")
    if args.max_face_px < 0 or 0 < args.max_face_px < 64:
        raise Face3DError(f"--max-face-px must be 0 (off) or at least 64, got {args.max_face_px}")

    specs = parse_expressions(args.expression, ARKIT_NAMES, intensity=args.intensity, mode=args.mode)
    _check_inputs(args.inputs)
    ctx = EditContext.from_dir(
        args.model_dir,
        config=EditConfig(max_face_px=args.max_face_px),
        fit_config=_fit_config(args),
        device=_device(args),
        regressor=None if args.no_regressor else "auto",
        refine=args.refine,
        method=args.method,
    )
    options = EditOptions(args.face, args.grid, args.resume, args.workers, ray=args.ray, threads=args.threads)
    summary = edit_folder(args.inputs, args.out, specs, ctx, options)
    print(summary.line("edits"))
    for file, reason in summary.failures[:20]:
        print(f"  failed: {file}: {reason}")
    return summary.exit_code


# ---------------------------------------------------------------------------------------- compare
def cmd_compare(args) -> int:
    from editing.api import EditContext
    from editing.compare.run import CompareOptions, check_methods, compare_folder, parse_methods
    from editing.expressions import ARKIT_NAMES, parse_expressions

    if args.workers < 1:
        raise Face3DError("--workers must be at least 1")
    methods = parse_methods(args.methods)
    specs = parse_expressions(args.expressions, ARKIT_NAMES, intensity=args.intensity)
    _check_inputs(args.inputs)
    if args.fer_faces is not None and not Path(args.fer_faces).is_file():
        raise Face3DError(f"--fer-faces: no such file: {args.fer_faces}")
    check_methods(methods)  # before the 3DMM loads
    ctx = EditContext.from_dir(
        args.model_dir, fit_config=_fit_config(args), device=_device(args), refine="none"
    )
    from editing.compare.run import aflw_yaws

    options = CompareOptions(
        face=args.face,
        resume=args.resume,
        workers=args.workers,
        ray=args.ray,
        threads=args.threads,
        fer_dir=args.fer_dir,
        real_dir=args.real_dir,
        yaw_truth=aflw_yaws(args.inputs) if args.yaw_from_mat else None,
        fer_faces=args.fer_faces,
    )
    summary = compare_folder(args.inputs, args.out, specs, methods, ctx, options)
    print(summary.line("rows"))
    print(f"report: {Path(args.out) / 'report.html'}")
    for file, reason in summary.failures[:20]:
        print(f"  failed: {file}: {reason}")
    return summary.exit_code


# ---------------------------------------------------------------------------------------- demo
def cmd_demo(args) -> int:
    from face3d.demo import run_demo

    for line in run_demo(args.out, _model(args), args.model_dir):
        print(line)
    return 0


# ---------------------------------------------------------------------------------------- train
def _train_regressor(args) -> int:
    from face3d.train.commands import train_regressor

    return train_regressor(args)


def _train_texture(args) -> int:
    from editing.train.texture_command import run_texture_from_args

    return run_texture_from_args(args)


def _train_deform(args) -> int:
    from editing.train.command import run_from_args

    return run_from_args(args)


TRAIN_TARGETS = {"regressor": _train_regressor, "texture": _train_texture, "deform": _train_deform}
"""``face3d train <what>``: one function per target (each a thin call into the library)."""


def cmd_train(args) -> int:
    return TRAIN_TARGETS[args.what](args)


def _add_train_parser(sub, common) -> None:
    """``face3d train`` with one sub-subcommand per target (add new targets next to ``regressor``)."""
    from face3d.train.commands import add_data_arguments, add_train_arguments

    p = sub.add_parser("train", help="train a network of the project (see face3d train -h)")
    train_sub = p.add_subparsers(dest="what", required=True)
    t = train_sub.add_parser(
        "regressor", parents=[common], help="the landmark/3DMM regression network, from photos"
    )
    t.add_argument("--data", required=True, help="photos: one sub-folder per person (LFW) or a flat folder")
    t.add_argument("--out", required=True, help="run folder: data/ shards, checkpoints, final/ weights")
    t.add_argument("--seed", type=int, default=0, help="data order, renders, init and batches")
    add_data_arguments(t, workers=False)
    add_train_arguments(t)
    from editing.train.command import add_arguments
    from editing.train.texture_command import add_texture_arguments

    add_texture_arguments(
        train_sub.add_parser(
            "texture", parents=[common], help="the texture generator of --refine gan, on edit-and-back cycles"
        )
    )
    text = "the 2D-only DefGAN baseline: deformation + texture generators (--method 2d)"
    add_arguments(train_sub.add_parser("deform", parents=[common], help=text))
    p.set_defaults(func=cmd_train)


# ---------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="face3d", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--model-dir",
        default=None,
        help="ICT-FaceKit FaceXModel folder or archive (default: $FACE3D_ICT_DIR, assets/ICT-FaceKit, "
        "../shared/ICT-FaceKit/FaceXModel.tar.xz)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", parents=[common], help="versions, device and where the 3DMM was found")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", parents=[common], help="run the main job on the built-in example photo")
    p.add_argument("--out", default="out/demo", help="output folder (default: out/demo)")
    _add_threads(p)
    p.set_defaults(func=cmd_demo)
    batch = _batch_parent()
    _add_fit_parser(sub, common, batch)
    _add_edit_parser(sub, common, batch)
    _add_compare_parser(sub, common, batch)
    _add_train_parser(sub, common)
    return parser


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch intra-op threads for the whole run (default: torch's, one per core)",
    )


def _batch_parent() -> argparse.ArgumentParser:
    """The options ``fit``, ``edit`` and ``compare`` share (the batch runner's and the fit's)."""
    p = argparse.ArgumentParser(add_help=False)
    _add_threads(p)
    p.add_argument("inputs", nargs="+", help="image files and/or folders (recursive)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--workers", type=int, default=1, help="threads decoding and detecting ahead; with --ray: Ray actors"
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        default=None,
        metavar="ADDRESS",
        help="run on Ray: no ADDRESS starts one on this machine; auto or ray://HOST:PORT joins a "
        "cluster (--out on a path every node shares; --threads: per actor, default 1)",
    )
    p.add_argument("--fov", type=float, default=None, help="fix the field of view (degrees)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where rendering runs")
    return p


def _add_fit_parser(sub, common, batch) -> None:
    p = sub.add_parser("fit", parents=[common, batch], help="fit the 3DMM to every face in images/folders")
    p.add_argument("--max-faces", type=int, default=None, help="at most N faces per image (largest first)")
    p.add_argument(
        "--bbox-file",
        default=None,
        help='protocol mode: JSON {"<image file name>": [x0, y0, x1, y1]} of ground-truth boxes',
    )
    p.add_argument("--resume", action="store_true", help="skip images whose outputs already exist")
    p.add_argument("--n-identity", type=int, default=None, help="identity modes to fit (default 40)")
    p.add_argument("--no-silhouette", action="store_true", help="keep anatomical jaw correspondences")
    p.add_argument("--no-mesh", action="store_true", help="do not write the textured OBJ")
    p.add_argument("--no-overlay", action="store_true", help="do not write the overlay PNG")
    p.add_argument("--ply", action="store_true", help="also write <stem>_<i>.ply with vertex colours")
    p.add_argument(
        "--fast", action="store_true", help="regression network only (no dlib landmarks, no optimiser)"
    )
    p.add_argument("--no-regressor", action="store_true", help="dlib landmarks only, at every pose")
    p.add_argument(
        "--detect-fallback",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="when dlib finds no face, search with the regression network (profiles dlib misses; "
        "default: on, unless --no-regressor)",
    )
    p.add_argument(
        "--no-profile-views",
        action="store_true",
        help="no extra test-time crops for faces at |yaw| >= 30 (faster on profiles, less accurate)",
    )
    p.add_argument(
        "--landmark-blend",
        type=float,
        default=None,
        metavar="W",
        help="near frontal on a detector's box, fit (1 - W) dlib's landmarks + W the network's "
        "(default 0.5; 0: dlib's alone)",
    )
    p.add_argument(
        "--residual",
        nargs="?",
        const="conv",
        choices=("conv", "free"),
        default=None,
        help="fit a residual displacement after the landmark fit: conv (reparametrised, default) or free",
    )
    p.add_argument(
        "--photometric",
        action="store_true",
        help="refine pose, expression and identity on the photo (albedo x SH shading render) after the fit",
    )
    p.set_defaults(func=cmd_fit)


def _add_edit_parser(sub, common, batch) -> None:
    p = sub.add_parser(
        "edit", parents=[common, batch], help="change the expression of every face, guided by 3D"
    )
    p.add_argument(
        "--expression",
        required=True,
        help="preset names (happy,sad,surprise: one output each), Action Units (AU12=0.8,AU6=0.5) or "
        "ARKit weights (mouthSmile_L=0.7,jawOpen=0.3); ';' separates several weighted targets",
    )
    p.add_argument("--intensity", type=float, default=1.0, help="0: fitted expression, 1: the target")
    p.add_argument("--mode", default="replace", help="replace (default) or add to the fitted weights")
    p.add_argument("--face", default="all", help="'all' (default) or the index of one face")
    p.add_argument("--grid", action="store_true", help="write <stem>_grid.png: input | edited head | output")
    p.add_argument(
        "--refine",
        choices=("auto", "gan", "none"),
        default="auto",
        help="clean what the 3D warp drew with the texture generator (auto: when assets/gan3d has weights)",
    )
    p.add_argument(
        "--method",
        choices=("3d", "2d", "2d-warp"),
        default="3d",
        help="3d (default), or a 2D-only baseline: 2d (DefGAN), 2d-warp (landmark warp, no 3D model)",
    )
    p.add_argument("--resume", action="store_true", help="skip images whose outputs already exist")
    p.add_argument("--no-regressor", action="store_true", help="dlib landmarks only, at every pose")
    p.add_argument("--max-face-px", type=int, default=512, help="edit a larger face at this size (0: off)")
    p.set_defaults(func=cmd_edit)


def _add_compare_parser(sub, common, batch) -> None:
    p = sub.add_parser(
        "compare", parents=[common, batch], help="compare editing methods per yaw bin, HTML report"
    )
    p.add_argument("--expressions", required=True, help="targets, e.g. happy,sad,surprise")
    p.add_argument(
        "--methods",
        default="2d,2d-warp,3d,3d-gan",
        help="comma list of 2d, 2d-warp, 3d, 3d-gan (default: all four)",
    )
    p.add_argument("--intensity", type=float, default=1.0, help="0: fitted expression, 1: the target")
    p.add_argument("--face", type=int, default=0, help="index of the face compared in each image")
    p.add_argument(
        "--resume", action="store_true", help="skip inputs already compared (runs only methods added since)"
    )
    p.add_argument("--fer-dir", default=None, help="FER classifier folder (default assets/fer)")
    p.add_argument("--real-dir", default=None, help="real photos for the realism (KID) reference")
    p.add_argument(
        "--fer-faces",
        default=None,
        metavar="NPZ",
        help="FER2013 npz (x_test, y_test, classes): also measure completeness toward its class medians",
    )
    p.add_argument(
        "--yaw-from-mat",
        action="store_true",
        help="bin by the ground-truth yaw of AFLW2000-3D .mat files beside the images (else the fit's)",
    )
    p.set_defaults(func=cmd_compare)


def _check_ray(address: str) -> None:
    """``--ray ADDRESS``: a known form, and Ray installed (one line otherwise, before any work)."""
    import re

    if address not in ("local", "auto") and not re.fullmatch(r"(ray://)?[\w.-]+:\d+", address):
        raise Face3DError(
            f"--ray: expected no value, auto, ray://HOST:PORT or HOST:PORT, got {address!r} "
            "(put --ray after the inputs)"
        )
    from face3d.batch_ray import import_ray

    import_ray()


def _start(args) -> Path | None:
    """What every command does before its work: the thread count, set once for the process
    (the library never changes it), ``--ray`` checked, and the output folder, made or refused
    with one line. Returns the output folder if this call created it (removed again if the
    command fails before writing anything into it)."""
    if getattr(args, "ray", None) is not None:
        if getattr(args, "device", "cpu") != "cpu":
            raise Face3DError("--ray runs on CPU actors: it cannot be combined with --device cuda")
        _check_ray(args.ray)
    if getattr(args, "threads", None) is not None:
        if args.threads < 1:
            raise Face3DError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    if getattr(args, "out", None):
        from face3d.batch import prepare_out_dir

        existed = Path(args.out).exists()
        folder = prepare_out_dir(args.out)
        return None if existed else folder
    return None


def _remove_if_empty(folder: Path | None) -> None:
    if folder is not None and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    created = None
    try:
        created = _start(args)
        return int(args.func(args) or 0)
    except Face3DError as err:
        _remove_if_empty(created)
        print(f"face3d: error: {err}", file=sys.stderr)
        return err.code
    except KeyboardInterrupt:
        print("face3d: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
