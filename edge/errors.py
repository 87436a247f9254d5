"""The moodbox error tree: retryable outages apart from fatal misconfiguration.

    MoodboxError
    ├── FatalError                 stop and exit non-zero; a person must fix something
    │   ├── ConfigError            config.yaml or an environment override is invalid
    │   └── ModelError             a model file is missing, corrupt or of the wrong shape
    └── RetryableError             a dependency is away; retry with backoff, keep running
        ├── CameraError            a source failed to open or stopped delivering frames
        ├── AudioUnavailableError  no sound device (yet)
        └── BrokerUnavailableError the MQTT broker cannot be reached

``EndOfStream`` is not an error: a replay source that was told to play once
raises it when it has delivered its last frame.
"""

from __future__ import annotations


class MoodboxError(Exception):
    """Base of every error moodbox raises on purpose."""


class FatalError(MoodboxError):
    """Nothing will get better by retrying."""


class ConfigError(FatalError):
    """Invalid configuration; ``problems`` lists each one with its key path and line."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class ModelError(FatalError):
    """A model file is missing, unreadable, or does not match its contract."""


class RetryableError(MoodboxError):
    """A dependency is unavailable for now."""


class CameraError(RetryableError):
    """A frame source failed to open or stopped delivering frames."""


class AudioUnavailableError(RetryableError):
    """The audio device is missing or busy."""


class BrokerUnavailableError(RetryableError):
    """The MQTT broker cannot be reached."""


class EndOfStream(MoodboxError):  # noqa: N818 - a signal, not a failure
    """A finite source (replay once) has no more frames."""
