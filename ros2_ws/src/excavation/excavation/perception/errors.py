"""Errors raised on bad input, so callers can tell a malformed message from a scene without a rock."""

from __future__ import annotations


class PerceptionInputError(ValueError):
    """An input (image, intrinsics, pose, file) is malformed.

    The message names the input and what was expected. A valid input that simply shows no rock is
    never an error: it yields a :class:`~excavation.perception.rock_detector.RockEstimate` with a reason.
    """


class CalibrationError(RuntimeError):
    """The tray could not be found in a calibration depth image (plane or size does not fit)."""
