"""Comparing editing methods per |yaw| bin: metrics (:mod:`~editing.compare.metrics`), an
independent expression classifier (:mod:`~editing.compare.fer`), the HTML report
(:mod:`~editing.compare.report`) and the run over a folder (:mod:`~editing.compare.run`)."""

from editing.compare.fer import FerClassifier, FerConfig
from editing.compare.run import CompareOptions, compare_folder, parse_methods

__all__ = ["CompareOptions", "FerClassifier", "FerConfig", "compare_folder", "parse_methods"]
