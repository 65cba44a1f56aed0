"""Command line: ``python -m export SOURCE [--repository model_repository] [--name NAME] ...``.

Every flag but SOURCE and ``--repository`` is a field of ``ExportOptions``, derived from it here (its help,
type and default are declared once, on the field)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import typing
from dataclasses import MISSING, Field, fields

from export.checkpoint import ExportError
from export.exporter import ExportOptions, export_model
from model_store import location
from model_store.s3 import StorageError

SCALARS = (int, float, str)


def _parser_of(option: Field, hint: object) -> typing.Callable[[str], object]:
    """How a flag's text becomes the field's value: its own ``parse``, else the type under ``X | None``."""
    if option.metadata["parse"] is not None:
        return option.metadata["parse"]
    scalar = [t for t in typing.get_args(hint) or (hint,) if t in SCALARS]
    return scalar[0]


def _add_option(parser: argparse.ArgumentParser, option: Field, hint: object, default: object) -> None:
    flag = option.metadata["flag"] or "--" + option.name.replace("_", "-")
    if hint is bool:
        parser.add_argument(flag, dest=option.name, action="store_true", help=option.metadata["help"])
        return
    text = option.metadata["help"]
    if "auto" in text and default is None:
        text += " (default: auto)"
    elif "default" not in text and default is not None:  # a help that names its default says it better
        text += f" (default: {default})"
    parser.add_argument(
        flag,
        dest=option.name,
        type=_parser_of(option, hint),
        default=default,
        choices=option.metadata["choices"],
        help=text,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a Hugging Face audio-classification checkpoint (Hub id or save_pretrained folder) "
        "to a Triton model repository: an ensemble NAME = NAME_preprocess -> NAME_onnx -> NAME_postprocess "
        "(--single-step: one model NAME).",
    )
    parser.add_argument("source", help="Hub id (org/name) or a local folder with model + feature extractor")
    location.add_repository_argument(parser, "the Triton model repository to write into")
    hints = typing.get_type_hints(ExportOptions)
    environment = {"token": os.environ.get("HF_TOKEN")}
    for option in fields(ExportOptions):
        if option.metadata:  # the fields with help are the flags
            default = environment.get(option.name, None if option.default is MISSING else option.default)
            _add_option(parser, option, hints[option.name], default)
    return parser.parse_args(argv)


def options_of(args: argparse.Namespace) -> ExportOptions:
    """The parsed flags as ``ExportOptions``; raises ``ExportError`` for a bad one, before any checkpoint is read."""
    return ExportOptions(**{f.name: getattr(args, f.name) for f in fields(ExportOptions) if f.metadata})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # progress and errors on stderr, as plain lines: stdout stays free for what a script may pipe
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s", force=True)
    logging.getLogger("huggingface_hub").propagate = False  # it has its own handler: each line once, not twice
    try:
        export_model(args.source, args.repository, options_of(args))
    except (ExportError, StorageError) as error:
        logging.getLogger("export").error("error: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
