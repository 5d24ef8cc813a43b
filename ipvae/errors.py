"""User-facing errors.

Every package raises a subclass of :class:`IpvaeError` for bad input (a corrupt file, a wrong shape,
NaN weights, a missing dataset). The CLI prints its message as one line and exits non-zero; it never
shows a traceback for these.
"""

import unicodedata


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
MESSAGE_LIMIT = 300  # characters of a whole error line


def _escaped(text: object, backslash: bool = True) -> str:
    """Control and format characters (ANSI escapes, newlines, bidi overrides, lone surrogates) as Python
    escapes: nothing that moves a terminal's cursor or splits the line; other letters stay readable."""
    return "".join(
        character.encode("unicode_escape", "backslashreplace").decode("ascii")
        if (backslash and character == "\\") or unicodedata.category(character)[0] == "C" or unicodedata.category(character) in ("Zl", "Zp")
        else character
        for character in str(text)
    )


def _shortened(text: str, limit: int) -> str:
    """At most about ``limit`` characters: the head and the tail, the middle counted (a path's file name stays)."""
    if len(text) <= limit:
        return text
    marker = f"...({len(text) - limit} more characters)..."
    kept = max(0, limit - len(marker))
    head = kept * 2 // 3
    return f"{text[:head]}{marker}{text[len(text) - (kept - head):]}"


def shown(text: object, limit: int = SHOWN_TEXT_LIMIT) -> str:
    """Text from a file or the user (a file name, a string read from a file), safe to print in one line:
    control characters escaped, length bounded, quoted."""
    return '"' + _shortened(_escaped(text).replace('"', '\\"'), limit) + '"'


def one_line(message: object, limit: int = MESSAGE_LIMIT) -> str:
    """A whole message as one printable line of at most about ``limit`` characters (the last line of defence:
    messages quote file names with ``shown`` already; this catches anything that slipped through)."""
    return _shortened(_escaped(message, backslash=False), limit)
