"""numpy's OpenBLAS in the steps runs this CPU's kernels: where OpenBLAS 0.3.23 (numpy<2's) does not know an Intel
CPU and falls back to Prescott, every launcher names the core from the CPU's flags in tritonserver's environment,
which the stubs inherit (the launchers' own tests check that each passes it on)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from triton_control.__main__ import main
from triton_steps import blas

AVX512 = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
HASWELL = {"sse4_2", "avx", "avx2", "fma"}


@pytest.mark.parametrize(
    ("flags", "core"),
    [
        (HASWELL | AVX512 | {"avx512_bf16", "amx_tile"}, "Cooperlake"),
        (HASWELL | AVX512, "SkylakeX"),
        (HASWELL | {"avx512f"}, "Haswell"),  # not the whole AVX-512 set SkylakeX's kernels use
        (HASWELL, "Haswell"),
        ({"sse4_2", "avx"}, None),  # nothing beyond the fallback fits
    ],
)
def test_the_core_is_the_best_one_the_flags_allow(flags: set[str], core: str | None) -> None:
    assert blas.core_for_flags(flags) == core


def test_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel\t\t: 207\nflags\t\t: fpu sse avx2 fma\n\nprocessor\t: 1\n")
    assert blas.cpu_flags(cpuinfo) == {"fpu", "sse", "avx2", "fma"}
    assert blas.cpu_flags(tmp_path / "absent") == set()  # not Linux: no flags, no override


def test_only_a_fallback_is_corrected_and_an_operators_choice_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blas, "cpu_flags", lambda: HASWELL | AVX512)
    monkeypatch.setattr(blas, "numpy_openblas_core", lambda: "Prescott")
    assert blas.steps_environment({}) == {"OPENBLAS_CORETYPE": "SkylakeX"}
    assert blas.steps_environment({"OPENBLAS_CORETYPE": "Haswell"}) == {}
    monkeypatch.setattr(blas, "numpy_openblas_core", lambda: "Zen")  # OpenBLAS knew the CPU
    assert blas.steps_environment({}) == {}
    monkeypatch.setattr(blas, "numpy_openblas_core", lambda: "Prescott")
    monkeypatch.setattr(blas, "cpu_flags", lambda: {"sse4_2"})  # a CPU that Prescott's kernels do fit
    assert blas.steps_environment({}) == {}


def _core_in_fresh_interpreter(environ: dict[str, str]) -> str:
    probe = "import json, threadpoolctl, numpy; print(json.dumps(threadpoolctl.threadpool_info()))"
    done = subprocess.run([sys.executable, "-c", probe], env=environ, capture_output=True, text=True, check=True)
    (core,) = [lib["architecture"] for lib in json.loads(done.stdout) if lib["internal_api"] == "openblas"]
    return core


def test_with_the_steps_environment_numpy_runs_this_cpus_kernels() -> None:
    """For real, on this machine: a process started with the environment the launchers give tritonserver runs
    OpenBLAS kernels beyond the generic fallback wherever the CPU has AVX2."""
    environ = {key: value for key, value in os.environ.items() if key != blas.CORETYPE_VARIABLE}
    extra = blas.steps_environment(environ)
    core = _core_in_fresh_interpreter({**environ, **extra})
    if blas.core_for_flags(blas.cpu_flags()) is None:
        pytest.skip("this CPU has no AVX2: the generic kernels are the right ones")
    assert core != blas.FALLBACK_CORE, f"numpy's OpenBLAS runs {core} kernels with {extra}"
    assert extra == {} or extra[blas.CORETYPE_VARIABLE].lower() == core.lower()


def test_the_command_prints_the_words_for_env(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr("triton_control.__main__.steps_environment", lambda environ: {"OPENBLAS_CORETYPE": "Haswell"})
    assert main(["steps-env"]) == 0 and capsys.readouterr().out == "OPENBLAS_CORETYPE=Haswell\n"
    monkeypatch.setattr("triton_control.__main__.steps_environment", lambda environ: {})
    assert main(["steps-env"]) == 0 and capsys.readouterr().out == "\n"  # nothing: `env tritonserver ...` as ever
