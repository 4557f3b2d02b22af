"""User-facing errors: each carries a one-line message and the exit code the CLI returns."""

from __future__ import annotations


class Face3DError(Exception):
    """A user's mistake or a missing resource; the CLI prints ``str(err)`` and exits with ``code``."""

    code = 2

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class ModelNotFoundError(Face3DError):
    """The ICT-FaceKit model could be found nowhere on the lookup path."""


class ModelFormatError(Face3DError):
    """The ICT-FaceKit model was found but a file in it is missing, truncated or inconsistent."""


class InputError(Face3DError):
    """An input image, spec or argument is unusable."""
