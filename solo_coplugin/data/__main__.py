"""``solo-co-data``: data tools. Each subcommand is a module of this package with a docstring
whose first line is the subcommand's help, ``add_arguments(parser)`` and ``run(args) -> int``
(the exit status)."""

import argparse
import sys
from typing import List, Optional

from solo_coplugin.data import image_check, tiny_imagenet

SUBCOMMANDS = {"check": image_check, "tiny-imagenet": tiny_imagenet}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="solo-co-data",
        description="Data tools: check an image folder file by file, prepare Tiny-ImageNet.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in SUBCOMMANDS.items():
        text = module.__doc__.replace("``", "")  # reStructuredText literals, plain in a terminal
        command = commands.add_parser(
            name,
            help=text.strip().splitlines()[0],
            description=text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    """Runs ``solo-co-data`` with ``argv`` (default: the command line); exits with the
    subcommand's status."""

    args = build_parser().parse_args(argv)
    sys.exit(args.run(args))


if __name__ == "__main__":
    main()
