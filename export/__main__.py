"""Command line: ``python -m export SOURCE [--repository model_repository] [--name NAME] ...``."""

from __future__ import annotations

import argparse
import os
import sys

from export.checkpoint import ExportError
from export.exporter import ExportOptions, export_model
from model_store import location
from model_store.s3 import StorageError


def _number_or_none(value: str) -> float | None:
    return None if value.lower() in ("0", "none") else float(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = ExportOptions()
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a Hugging Face audio-classification checkpoint (Hub id or save_pretrained folder) "
        "to a Triton model repository: an ensemble NAME = NAME_preprocess -> NAME_onnx -> NAME_postprocess.",
    )
    parser.add_argument("source", help="Hub id (org/name) or a local folder with model + feature extractor")
    parser.add_argument(
        "--repository",
        type=location.parse,
        default=os.environ.get("MODEL_REPOSITORY", "model_repository"),
        help="Triton model repository to write into: a folder or s3://bucket/prefix (S3 endpoint and credentials "
        "from the AWS_* environment variables) (env MODEL_REPOSITORY; default: model_repository)",
    )
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
        "--onnx-threads",
        type=int,
        default=defaults.onnx_threads,
        help="onnxruntime intra-op threads per instance (default: %(default)s)",
    )
    parser.add_argument(
        "--memory-budget",
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
    options = ExportOptions(
        name=args.name,
        model_id=args.model_id,
        revision=args.revision,
        token=args.token,
        max_batch_size=args.max_batch_size,
        max_seconds=args.max_seconds,
        memory_budget_gib=args.memory_budget,
        tolerance=args.tolerance,
        feature_tolerance=args.feature_tolerance,
        preprocess_instances=args.preprocess_instances,
        onnx_threads=args.onnx_threads,
        tensorrt=args.tensorrt,
        long_audio=args.long_audio,
        chunk_seconds=args.chunk_seconds,
        chunk_hop_seconds=args.chunk_hop_seconds,
    )
    try:
        export_model(args.source, args.repository, options, log=lambda m: print(m, file=sys.stderr, flush=True))
    except (ExportError, StorageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
