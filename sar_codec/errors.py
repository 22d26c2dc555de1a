"""Errors raised by sar_codec: one root, each also the matching builtin."""


class SarCodecError(Exception):
    """Root of every error sar_codec raises on purpose; its message is one sentence for the user."""


class InputError(SarCodecError, ValueError):
    """The input scene, option or argument is not usable (wrong file, band count, dtype, size...)."""


class ContainerError(SarCodecError, ValueError):
    """A .sarc container is truncated, corrupted, or of an unknown version."""


class WeightsError(SarCodecError, LookupError):
    """The model weights a container or option names are not installed or do not match their hash."""


class OutputExistsError(SarCodecError, FileExistsError):
    """The output path exists (or is an input) and overwriting was not asked for."""


class CancelledError(SarCodecError):
    """The caller's ``cancelled`` callable asked to stop; no partial output was left."""
