"""User-facing errors.

Every problem a user can cause (a bad path, a corrupt video, a wrong checkpoint, malformed JSON)
raises a subclass of :class:`VistrError` whose message says what is wrong *and* what to do instead.
The CLI prints the message on one line and exits non-zero; it never shows a traceback for these.
"""

from __future__ import annotations

# Said wherever a model is needed and none was given (the CLI says it without loading torch).
CHECKPOINT_HINT = "pass --checkpoint with the official vistr_r50.pth / vistr_r101.pth or a checkpoint written by `vistr train`"


class VistrError(Exception):
    """A problem the user can fix. ``str(err)`` is a complete one-line explanation."""


class ConfigError(VistrError):
    """An invalid setting, preset name or combination of options."""


class CheckpointError(VistrError):
    """A checkpoint that cannot be read, is unsafe to unpickle, or does not fit the model."""


class DatasetError(VistrError):
    """A dataset folder or annotation file that is missing or malformed."""


class VideoError(VistrError):
    """A video file or frame folder that cannot be decoded."""


class ResultsError(VistrError):
    """A results file that does not fit its ground truth or the YouTube-VIS results format."""


class DeviceError(VistrError):
    """A requested device that this machine does not have."""


class OutputExistsError(VistrError):
    """An output would overwrite something the user wrote; pass --force to allow it."""


class VistrWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints one line)."""
