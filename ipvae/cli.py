"""The `ipvae` command line: one entry point, one subcommand per job.

Each package contributes its subcommands through a ``register(subparsers)`` function, so the
dispatch table lives in one place (``_COMMAND_MODULES``) and each command's code lives beside the
code it drives.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ipvae import __version__
from ipvae.errors import IpvaeError, one_line, shown

OS_ERROR_EXIT = 2  # a file the command was given cannot be used (a name too long, a permission, a full disk)
OUT_OF_MEMORY_EXIT = 3

# Modules that define `register(subparsers)`; each registered parser sets `func=handler(args) -> int`.
_COMMAND_MODULES = (
    "ipvae.train.cli",
    "ipvae.train.importers.cli",
    "ipvae.export.cli",
    "ipvae.lava.cli",
    "ipvae.demo",
    "ipvae.paper.cli",
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one line with exit code 2 (argparse prints usage too)."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.exit(2, one_line(f"{self.prog}: error: {message} (see '{self.prog} --help')") + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ipvae", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ipvae {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:  # that package has no commands yet
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # name the subcommand whose help lists the valid flags
        parser.exit(2, one_line(f"ipvae {args.command}: error: unrecognized arguments: {shown(' '.join(unknown))} "
                                f"(see 'ipvae {args.command} --help')") + "\n")
    # Every failure is one line, at most ~300 printable characters: the toolkit's own errors, and as a last
    # line of defence, an OSError about a path the user gave (a name too long, a permission, a full disk)
    # or an allocation that ipvae.limits did not foresee.
    try:
        return int(args.func(args) or 0)
    except IpvaeError as error:
        print(one_line(f"ipvae {args.command}: error: {error}"), file=sys.stderr)
        return error.exit_code
    except OSError as error:
        where = f" ({shown(error.filename)})" if error.filename is not None else ""
        print(one_line(f"ipvae {args.command}: error: {error.strerror or type(error).__name__}{where}"), file=sys.stderr)
        return OS_ERROR_EXIT
    except MemoryError:
        print(f"ipvae {args.command}: error: not enough memory for this request; ask for less", file=sys.stderr)
        return OUT_OF_MEMORY_EXIT
    except KeyboardInterrupt:
        print(f"ipvae {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
