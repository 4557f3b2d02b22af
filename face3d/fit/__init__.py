"""Fitting: FitConfig, the landmark fitter, the per-image pipeline and the folder runner."""

from face3d.fit.config import FitConfig
from face3d.fit.folder import FolderOptions, fit_folder
from face3d.fit.landmark_fit import fit_landmarks
from face3d.fit.photometric import PhotometricConfig, PhotometricResult, refine_photometric
from face3d.fit.pipeline import FaceFit, fit_image
from face3d.fit.result import FitResult

__all__ = [
    "FaceFit",
    "FitConfig",
    "FitResult",
    "FolderOptions",
    "PhotometricConfig",
    "PhotometricResult",
    "fit_folder",
    "fit_image",
    "fit_landmarks",
    "refine_photometric",
]
