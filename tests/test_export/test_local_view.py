"""local_triton.view: the same repository, runnable by a tritonserver without the onnxruntime backend."""

from __future__ import annotations

from pathlib import Path

from export import model_configs
from local_triton import view


def test_view_runs_the_same_onnx_file_on_the_python_backend(repository: Path, tmp_path: Path) -> None:
    names = view.build(repository, tmp_path / "view")
    assert "hubert_onnx" in names and "hubert" in names
    network = model_configs.parse((tmp_path / "view" / "hubert_onnx" / "config.pbtxt").read_text())
    assert network.backend == "python" and network.platform == ""
    original = model_configs.parse((repository / "hubert_onnx" / "config.pbtxt").read_text())
    assert list(network.input) == list(original.input) and list(network.output) == list(original.output)
    onnx = tmp_path / "view" / "hubert_onnx" / "1" / "model.onnx"
    assert onnx.is_symlink() and onnx.resolve() == (repository / "hubert_onnx" / "1" / "model.onnx").resolve()
    # everything else is the repository itself, not a copy
    assert (tmp_path / "view" / "hubert_preprocess").resolve() == (repository / "hubert_preprocess").resolve()
