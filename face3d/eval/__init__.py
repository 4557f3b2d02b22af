"""Evaluation: the AFLW2000-3D loader and split (:mod:`~face3d.eval.aflw`) and the one NME with
its per-|yaw|-bin tables (:mod:`~face3d.eval.metrics`) and face-free images for the
detection benchmarks (:mod:`~face3d.eval.face_free`). Used by benchmarks and training, never
by inference."""

from face3d.eval.aflw import SPLITS, AFLWSample, load_aflw, select_split, split_aflw, stratified
from face3d.eval.face_free import no_face_images
from face3d.eval.metrics import BIN_NAMES, YAW_BINS, bin_line, bin_table, nme, yaw_bin

__all__ = [
    "BIN_NAMES",
    "SPLITS",
    "YAW_BINS",
    "AFLWSample",
    "bin_line",
    "bin_table",
    "load_aflw",
    "no_face_images",
    "nme",
    "select_split",
    "split_aflw",
    "stratified",
    "yaw_bin",
]
