"""The one way perception refuses bad input: an exception that carries a counter key."""

from __future__ import annotations


class InputRejected(ValueError):
    """Input that cannot be used; ``reason`` is a short key counted in diagnostics.

    Reasons used: ``encoding`` (unsupported image/audio encoding), ``size_mismatch``,
    ``no_camera_info``, ``camera_info_mismatch``, ``bad_camera_info``, ``bad_pose``,
    ``no_pose``, ``stamp_backwards``, ``bad_box``, ``no_valid_depth``, ``too_few_points``,
    ``audio_format``, ``bad_image`` (also compressed bytes that do not decode),
    ``unknown_class`` (a numeric class id not in ``class_names``); the pipeline also counts
    ``skipped_no_label`` (a detection without class or score).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
