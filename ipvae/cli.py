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
from ipvae.errors import IpvaeError

# Modules that define `register(subparsers)`; each registered parser sets `func=handler(args) -> int`.
_COMMAND_MODULES = (
    "ipvae.train.cli",
    "ipvae.export.cli",
    "ipvae.lava.cli",
    "ipvae.demo",
    "ipvae.paper.cli",
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one line with exit code 2 (argparse prints usage too)."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


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
        parser.exit(2, f"ipvae {args.command}: error: unrecognized arguments: {' '.join(unknown)} "
                       f"(see 'ipvae {args.command} --help')\n")
    try:
        return int(args.func(args) or 0)
    except IpvaeError as error:
        print(f"ipvae {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"ipvae {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
