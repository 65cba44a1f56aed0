"""The per-operator profile: each onnxruntime node's work from the shapes its profiler records, which must add up
to the clip's work as torch counts it (``benchmarks.roofline``), and the kinds the engines' operators fall in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import op_profile, roofline
from export.exporter import ExportOptions, export_model
from tests import tiny_checkpoints
from triton_steps import engines
from triton_steps.contract import StepNames


@pytest.mark.parametrize(
    ("op_type", "inputs", "output", "expected"),
    [
        ("MatMul", [[1, 49, 768]], [1, 49, 3072], ("linear", 2 * 49 * 3072 * 768)),  # a prepacked weight
        ("MatMul", [[1, 12, 49, 49], [1, 12, 49, 64]], [1, 12, 49, 64], ("attention", 2 * 12 * 49 * 64 * 49)),
        ("FusedMatMul", [[1, 12, 49, 64], [1, 12, 64, 49]], [1, 12, 49, 49], ("attention", 2 * 12 * 49 * 49 * 64)),
        ("FusedMatMul", [[2, 64, 49], [2, 64, 32]], [2, 49, 32], ("attention", 2 * 2 * 49 * 32 * 64)),  # transA
        ("Gemm", [[1, 256], [12]], [1, 12], ("linear", 2 * 12 * 256)),  # its weight prepacked, its bias recorded
        ("Conv", [[1, 768, 49], [768, 48, 128], [768]], [1, 768, 50], ("convolution", 2 * 768 * 50 * 48 * 128)),
        ("Softmax", [[1, 12, 49, 49]], [1, 12, 49, 49], ("attention", 0.0)),
        ("LayerNormalization", [[1, 49, 768]], [1, 49, 768], ("other", 0.0)),
    ],
)
def test_each_nodes_kind_and_work(op_type: str, inputs: list, output: list, expected: tuple[str, float]) -> None:
    assert op_profile.node_kind_and_flops(op_type, inputs, output) == expected


def test_the_profiles_work_is_the_clips_work_as_torch_counts_it(tmp_path: Path) -> None:
    """wav2vec2 (convolutions, a grouped positional convolution, linear layers, attention) at batch 2: what the
    profile counts from onnxruntime's recorded shapes is torch's count on the eager model, twice."""
    checkpoint = tiny_checkpoints.build("wav2vec2-group-norm", tmp_path / "wav2vec2")
    export_model(str(checkpoint), tmp_path / "r", ExportOptions(name="w", engine=engines.ONNXRUNTIME))
    network = tmp_path / "r" / StepNames("w").network / "1" / "model.onnx"
    feed = {"input_values": np.random.default_rng(0).standard_normal((2, 16000)).astype(np.float32)}

    ms, gflop = op_profile.onnxruntime_profile(network, feed, threads=1, runs=2)

    assert sum(gflop.values()) == pytest.approx(2 * roofline.gflop_per_clip(checkpoint, 1.0), rel=1e-6)
    assert gflop["linear"] > 0 and gflop["convolution"] > 0 and gflop["attention"] > 0 and gflop["other"] == 0
    assert set(ms) == set(op_profile.KINDS) and all(value > 0 for value in ms.values())
