"""The exporter refuses what it cannot serve exactly, replaces models atomically, and has a CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tiny_checkpoints
from helpers import free_port

from export import checkpoint as ckpt
from export import engine_choice
from export import repository as repo
from export.__main__ import options_of, parse_args
from export.checkpoint import ExportError, default_name
from export.exporter import ExportOptions, export_model
from triton_steps import engines


def test_default_name() -> None:
    assert default_name("MIT/ast-finetuned-speech-commands-v2") == "ast-finetuned-speech-commands-v2"
    assert default_name("/tmp/some folder/my model/") == "my-model"


def test_unsupported_feature_extractor_is_refused(checkpoints, tmp_path: Path) -> None:
    folder = tmp_path / "ckpt"
    shutil.copytree(checkpoints["hubert"], folder)
    config_path = folder / "preprocessor_config.json"
    config = json.loads(config_path.read_text())
    config["feature_extractor_type"] = "ClapFeatureExtractor"
    config_path.write_text(json.dumps(config))
    with pytest.raises(ExportError, match="ClapFeatureExtractor"):
        export_model(str(folder), tmp_path / "repo")
    assert not (tmp_path / "repo" / "ckpt").exists()


def test_a_graph_that_differs_from_torch_is_refused(checkpoints, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not export exactly, refusing it"):
        export_model(str(checkpoints["ast"]), tmp_path / "repo", ExportOptions(tolerance=1e-12))
    assert not (tmp_path / "repo").exists()  # nothing written


def test_not_a_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="could not load an audio-classification checkpoint"):
        export_model(str(tmp_path), tmp_path / "repo")


def test_reexport_replaces_the_model_atomically(checkpoints, tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    export_model(str(checkpoints["hubert"]), repository, ExportOptions(name="m"))
    before = {p: p.stat().st_ino for p in repository.iterdir()}
    marker = repository / "m_onnx" / "stale-file"
    marker.write_text("from the old export")
    export_model(str(checkpoints["unispeech"]), repository, ExportOptions(name="m"))
    assert sorted(p.name for p in repository.iterdir()) == [
        "m",
        "m_onnx",
        "m_postprocess",
        "m_preprocess",
        "published.json",
    ]
    assert not marker.exists()
    assert all(p.stat().st_ino != inode for p, inode in before.items())  # new directories, swapped in
    assert "UniSpeech" in (repository / "m" / "metadata.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # no staging left behind


def test_exchange_swaps_two_directories(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("b")
    assert repo._exchange(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "a" / "x").read_text() == "b" and (tmp_path / "b" / "x").read_text() == "a"


def test_cli_exports_and_shows_progress(checkpoints, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MODEL_REPOSITORY"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "export",
            str(checkpoints["wavlm"]),
            "--repository",
            str(tmp_path / "r"),
            "--name",
            "kws",
            "--max-batch-size",
            "4",
            "--max-seconds",
            "0",
            "--memory-budget",
            "0",  # no limit at all: neither a length nor a memory budget
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "[1/4" in result.stderr and "[4/4" in result.stderr and "parity:" in result.stderr
    metadata = json.loads((tmp_path / "r" / "kws" / "metadata.json").read_text())
    assert metadata["max_batch_size"] == 4 and metadata["max_seconds"] is None


def test_auto_keeps_the_faster_exact_engine_and_says_so_everywhere(checkpoints, tmp_path: Path) -> None:
    """--engine auto (the default) checks both engines against torch, times them here, and records the choice
    in the network step's config (what the local step runs) and the metadata (GET /models)."""
    result = export_model(str(checkpoints["wavlm"]), tmp_path / "r", ExportOptions(name="m"))
    metadata = result.metadata
    assert set(metadata.engine_ms) == set(engines.ENGINES) and all(ms > 0 for ms in metadata.engine_ms.values())
    assert metadata.engine == min(metadata.engine_ms, key=metadata.engine_ms.__getitem__)
    assert set(result.parity.engine_diffs) == set(engines.ENGINES)
    assert all(diff <= ExportOptions().tolerance for diff in result.parity.engine_diffs.values())
    config = (tmp_path / "r" / "m_onnx" / "config.pbtxt").read_text()
    assert re.search(rf'key: "engine"\s*value \{{\s*string_value: "{metadata.engine}"', config), config
    pinned = export_model(str(checkpoints["wavlm"]), tmp_path / "r", ExportOptions(name="n", engine="onnxruntime"))
    assert pinned.metadata.engine == "onnxruntime" and pinned.metadata.engine_ms == {}
    assert set(pinned.parity.engine_diffs) == {"onnxruntime"}  # only the engine it may run is checked


def test_auto_times_the_engines_on_what_the_network_step_will_be_given(
    checkpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A waveform model: one clip of its window alone, and a full batch of 1 s clips, as the step batches short
    clips (the network step, or a --single-step model's one step). Not the batch when such clips run alone
    (--batched-example-limit)."""
    timed: list[list[tuple[str, int, tuple[int, ...]]]] = []

    def fastest(candidates: dict, workloads: list[engine_choice.Workload], threads: int) -> dict[str, float]:
        timed.append([(w.label, w.clips, next(iter(w.feed.values())).shape) for w in workloads])
        return {label: 1.0 for label in candidates}

    monkeypatch.setattr(engine_choice, "fastest", fastest)
    source = str(checkpoints["wavlm"])
    export_model(source, tmp_path / "r", ExportOptions(name="a", max_batch_size=4))
    export_model(source, tmp_path / "r", ExportOptions(name="b", batched_example_limit=8000))
    export_model(source, tmp_path / "r", ExportOptions(name="c", single_step=True, max_batch_size=4))

    window, batched = timed[0]
    assert window[1] == 1 and window[2][0] == 1
    assert batched == ("4 clips of 1 s", 4, (4, 16000))
    assert timed[1] == [window]
    assert timed[2] == timed[0]


def test_cli_failure_exits_1_with_the_reason(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "export", str(tmp_path / "missing"), "--repository", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "error: " in result.stderr and "is not a folder" in result.stderr


def _hub_less(tmp_path: Path, offline: bool) -> dict[str, str]:
    """An environment with an empty HF cache and no Hub: offline mode, or a Hub endpoint nobody listens on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["HF_HOME"] = str(tmp_path / "hf")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    return env


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE", "unreachable"])
def test_a_hub_id_without_a_hub_fails_at_once_with_one_message(tmp_path: Path, offline: bool) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "export", "org/never-cached", "--repository", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env=_hub_less(tmp_path, offline),
        timeout=120,
    )
    print(f"failed in {time.monotonic() - started:.1f} s")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Retrying" not in result.stderr, result.stderr
    assert "'org/never-cached' is not in the HF cache" in errors[0]
    assert ("HF_HUB_OFFLINE is set" if offline else "did not answer") in errors[0]


def test_a_cached_hub_id_exports_while_the_hub_is_unreachable(tmp_path: Path) -> None:
    """The real Hub code path (transformers' from_pretrained) on an HF cache laid out by hand, the Hub down."""
    env = _hub_less(tmp_path, offline=False)
    tiny_checkpoints.build("wav2vec2-layer-norm", tiny_checkpoints.hub_snapshot(tmp_path / "hf" / "hub", "org/kws"))
    result = subprocess.run(
        [sys.executable, "-m", "export", "org/kws", "--repository", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "r" / "kws" / "metadata.json").read_text())["model_id"] == "org/kws"


@pytest.mark.parametrize(
    "flags, reason",
    [
        (["--quantize", "int8", "--tensorrt"], "--quantize int8 is for CPU serving"),
        (["--long-audio", "chunk", "--max-seconds", "0"], "--long-audio chunk needs --max-seconds"),
        (["--max-batch-size", "0"], "--max-batch-size must be positive"),
        (["--chunk-seconds", "-1"], "--chunk-seconds must be positive"),
        (["--quantized-min-agreement", "2"], "--quantized-min-agreement must be in [0, 1]"),
        (["--single-step", "--tensorrt"], "--tensorrt needs the ensemble"),
    ],
)
def test_a_bad_option_is_refused_before_the_checkpoint_is_read(
    checkpoints, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], reason: str
) -> None:
    """Before minutes of export: the command line's flags, on a real checkpoint that is never read, refused
    with the reason, and nothing written. (The command line's own exit and message: the tests above.)"""
    monkeypatch.setattr(ckpt, "load", lambda *args: pytest.fail("the checkpoint was read"))
    args = parse_args([str(checkpoints["hubert"]), "--repository", str(tmp_path / "r"), *flags])
    with pytest.raises(ExportError, match=re.escape(reason)):
        export_model(args.source, args.repository, options_of(args))
    assert not (tmp_path / "r").exists()
