"""User-facing errors.

Every package raises a subclass of :class:`IpvaeError` for bad input (a corrupt file, a wrong shape,
NaN weights, a missing dataset). The CLI prints its message as one line and exits non-zero; it never
shows a traceback for these.
"""


class IpvaeError(Exception):
    """Bad input or an unusable artefact; the message is one complete sentence for the user."""

    exit_code = 2


class DatasetUnavailable(IpvaeError):
    """A dataset that is optional and not installed (the message names what to install)."""


class CheckpointError(IpvaeError):
    """A run directory or checkpoint that is missing, corrupt, or does not match its config."""


class ExportFormatError(IpvaeError):
    """An HDF5 export that is corrupt, truncated, or fails validation (the message names the field)."""


class TrainingDiverged(IpvaeError):
    """The loss or the parameters became NaN/Inf; the last good checkpoint is kept."""

    exit_code = 3


class OutputPathError(IpvaeError):
    """An output path that cannot be written (checked before the work starts)."""


SHOWN_TEXT_LIMIT = 120


def shown(text: object, limit: int = SHOWN_TEXT_LIMIT) -> str:
    """Text from a file or the user, safe to print in one line: control characters escaped, length bounded."""
    escaped = str(text).encode("unicode_escape").decode("ascii").replace('"', '\\"')
    if len(escaped) <= limit:
        return f'"{escaped}"'
    return f'"{escaped[:limit]}"... ({len(escaped) - limit} more characters)'
