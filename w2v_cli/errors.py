"""The project's own error types.

Library code raises these; only the CLI turns them into messages and exit codes
(see ``cli.py``). Every message names the bad input and what to do about it.
"""

from __future__ import annotations


class W2VError(Exception):
    """Base class: an error the user can act on (shown without a traceback)."""


class ConfigError(W2VError):
    """A config file, ``--set`` override or flag is malformed or invalid."""


class AudioError(W2VError):
    """An audio file is missing, empty, corrupt or holds unusable samples."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ModelNotAvailableError(W2VError):
    """A model is neither local, cached, built in, nor downloadable right now."""


class DataError(W2VError):
    """A dataset, manifest or transcript is malformed or unreadable."""
