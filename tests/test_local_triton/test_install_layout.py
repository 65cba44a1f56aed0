"""``python -m local_triton install PREFIX``: the wheel's server in NGC's layout, as the slim CPU image has it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from local_triton.tritonserver import wheel_dir


def test_install_lays_out_bin_and_backends_and_the_linked_binary_runs(tmp_path: Path) -> None:
    prefix = tmp_path / "opt" / "tritonserver"
    subprocess.run([sys.executable, "-m", "local_triton", "install", str(prefix)], check=True)
    server = prefix / "bin" / "tritonserver"
    assert server.resolve() == (wheel_dir() / "bin" / "tritonserver").resolve()
    assert (prefix / "backends" / "python" / "libtriton_python.so").is_file()
    assert (prefix / "backends" / "python" / "triton_python_backend_stub").exists()
    assert "triton_steps.onnx_model" in (prefix / "backends" / "onnxruntime" / "model.py").read_text()
    # started through the link (as the image's PATH does), its default backend folder is the image's
    shown = subprocess.run([str(server), "--help"], capture_output=True, text=True)
    help_text = shown.stdout + shown.stderr
    assert "Default is '/opt/tritonserver/backends'" in help_text
