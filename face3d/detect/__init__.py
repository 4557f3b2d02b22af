"""Face detection, 68 landmarks and identity descriptors (dlib), and the landmark-box mapping.

Importing this package loads no model; dlib's models load on first use. See
:mod:`face3d.detect.boxes` for the box convention and :mod:`face3d.detect.dlib_detector` for the
detector, the shape predictor and the 128-d descriptor.
"""

from face3d.detect.boxes import (
    Box,
    BoxMappingError,
    apply_mapping,
    default_mapping_path,
    dlib_box_from_landmark_box,
    from_dlib_rect,
    iou,
    landmark_box,
    load_mapping,
    to_dlib_rect,
)
from face3d.detect.dlib_detector import (
    DetectConfig,
    Detection,
    FaceDetector,
    Landmarks,
    check_image,
    descriptor_distance,
    face_chip,
    face_descriptor,
    predict_landmarks,
)

__all__ = [
    "Box",
    "BoxMappingError",
    "DetectConfig",
    "Detection",
    "FaceDetector",
    "Landmarks",
    "apply_mapping",
    "check_image",
    "default_mapping_path",
    "descriptor_distance",
    "dlib_box_from_landmark_box",
    "face_chip",
    "face_descriptor",
    "from_dlib_rect",
    "iou",
    "landmark_box",
    "load_mapping",
    "predict_landmarks",
    "to_dlib_rect",
]
