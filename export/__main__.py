"""Command line: ``python -m export SOURCE [--repository model_repository] [--name NAME] ...``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import fields

from export.checkpoint import ExportError
from export.exporter import ExportOptions, export_model
from model_store import location
from model_store.s3 import StorageError


def _number_or_none(value: str) -> float | None:
    return None if value.lower() in ("0", "none") else float(value)


def _count_or_auto(value: str) -> int | None:
    if value == "auto":
        return None
    count = int(value)
    if count < 1:
        raise argparse.ArgumentTypeError("must be auto or a positive count")
    return count


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = ExportOptions()
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a Hugging Face audio-classification checkpoint (Hub id or save_pretrained folder) "
        "to a Triton model repository: an ensemble NAME = NAME_preprocess -> NAME_onnx -> NAME_postprocess.",
    )
    parser.add_argument("source", help="Hub id (org/name) or a local folder with model + feature extractor")
    location.add_repository_argument(parser, "the Triton model repository to write into")
    parser.add_argument("--name", help="Triton model name (default: the last part of SOURCE)")
    parser.add_argument(
        "--model-id",
        help="the id clients send (POST /models/<id>); default: the Hub id, or the name for a folder",
    )
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit)")
    parser.add_argument("--token", default=os.environ.get("HF_TOKEN"), help="Hub token (env HF_TOKEN)")
    parser.add_argument("--max-batch-size", type=int, default=defaults.max_batch_size, help="default: %(default)s")
    parser.add_argument(
        "--max-seconds",
        type=_number_or_none,
        default=defaults.max_seconds,
        help="longest audio accepted, in seconds; 0 for no limit (default: %(default)s)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=defaults.tolerance,
        help="max |ONNX - torch| of the logits, relative to their scale (default: %(default)s)",
    )
    parser.add_argument(
        "--feature-tolerance",
        type=float,
        default=defaults.feature_tolerance,
        help="max |ours - transformers| features (default: %(default)s)",
    )
    parser.add_argument(
        "--preprocess-instances",
        type=int,
        default=defaults.preprocess_instances,
        help="CPU instances of the preprocess step (default: %(default)s)",
    )
    parser.add_argument(
        "--cpu-threads",
        type=_count_or_auto,
        default="auto",
        help="onnxruntime threads per network instance; auto: 1 for a model under 10M parameters, else every "
        "CPU available here (export on the serving machine, or give its count) (default: %(default)s)",
    )
    parser.add_argument(
        "--instances",
        type=_count_or_auto,
        default="auto",
        help="network instances (per GPU on a GPU machine); auto: 1 (default: %(default)s)",
    )
    parser.add_argument(
        "--queue-delay-ms",
        type=float,
        default=defaults.queue_delay_ms,
        help="how long Triton may hold a request at the network step for others to join its batch: more "
        "throughput under concurrent load, that much more latency when requests come one at a time "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--batched-example-limit",
        type=int,
        default=defaults.batched_example_limit,
        help="on the CPU (local mode, the slim CPU image), requests whose network input holds more elements "
        "than this run one at a time instead of as a batch, which costs more per clip past a few seconds of "
        "audio; 0: batch every size (default: %(default)s, 3 s at 16 kHz)",
    )
    parser.add_argument(
        "--quantize",
        choices=["fp32", "int8"],
        default=defaults.quantize,
        help="int8: dynamic int8 MatMul/Gemm, faster on CPU; its scores are not transformers' within 1e-4 but "
        "must pass the gate below against the fp32 model (default: %(default)s)",
    )
    parser.add_argument(
        "--quantized-tolerance",
        type=float,
        default=defaults.quantized_tolerance,
        help="int8: largest |score - fp32 score| allowed on the gate's 48 clips (default: %(default)s)",
    )
    parser.add_argument(
        "--quantized-min-agreement",
        type=float,
        default=defaults.quantized_min_agreement,
        help="int8: smallest fraction of the gate's clips whose top label must equal fp32's (default: %(default)s)",
    )
    parser.add_argument(
        "--memory-budget",
        dest="memory_budget_gib",
        type=_number_or_none,
        default=defaults.memory_budget_gib,
        help="GiB of attention memory per request: a waveform model's --max-seconds is lowered to fit; "
        "0 for none (default: %(default)s)",
    )
    parser.add_argument(
        "--long-audio",
        choices=["none", "chunk"],
        default=defaults.long_audio,
        help="none: as transformers (the model's own padding / truncation); chunk: classify recordings up to "
        "--max-seconds by sliding windows, scores aggregated (mean; max for sigmoid) (default: %(default)s)",
    )
    parser.add_argument(
        "--chunk-seconds",
        type=float,
        help="chunk window (default: the model's own: AST 10.24 s, Whisper 30 s, else 10 s)",
    )
    parser.add_argument("--chunk-hop-seconds", type=float, help="chunk hop between windows (default: the window)")
    parser.add_argument(
        "--tensorrt",
        action="store_true",
        help="ask Triton's onnxruntime backend to run the network with TensorRT on GPU instances",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # progress and errors on stderr, as plain lines: stdout stays free for what a script may pipe
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s", force=True)
    try:
        # argparse's destinations are ExportOptions' field names: the options are declared once, by the parser
        options = ExportOptions(
            **{f.name: getattr(args, f.name) for f in fields(ExportOptions) if hasattr(args, f.name)}
        )
        export_model(args.source, args.repository, options)
    except (ExportError, StorageError) as error:
        logging.getLogger("export").error("error: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
