"""numpy's OpenBLAS in the steps: its kernels for this CPU, named before Triton starts when it cannot tell.

The steps pin numpy<2 (see pyproject), whose wheels carry OpenBLAS 0.3.23. That OpenBLAS picks its kernels by
the CPU's model number and falls back to its generic Prescott (SSE3) ones on an Intel CPU it does not know
(OpenMathLib/OpenBLAS#4267, fixed in 0.3.25), such as the Xeons of this project's machines (family 6, model
207: AVX-512 and AVX512-BF16). There a float64 matrix product ran at 10.7 GFLOP/s instead of 48.5, and the
features of a 1 s keyword-spotter clip took 0.94 ms instead of 0.47 (Whisper-base 10 s: 12.2 ms, 6.5).

OpenBLAS chooses when it loads, before any step's code runs, so the fix is the environment of tritonserver,
whose stubs inherit it: ``OPENBLAS_CORETYPE`` named from the CPU's flags, only where OpenBLAS fell back and the
variable is not already set. Every launcher applies ``steps_environment``: ``local_triton`` itself, compose
and Kubernetes through ``python -m triton_control steps-env``.
"""

from __future__ import annotations

from pathlib import Path

CORETYPE_VARIABLE = "OPENBLAS_CORETYPE"
FALLBACK_CORE = "Prescott"  # what OpenBLAS runs on a CPU it does not recognise
_AVX512 = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}  # OpenBLAS's SkylakeX kernels use these
CPUINFO = Path("/proc/cpuinfo")


def core_for_flags(flags: set[str]) -> str | None:
    """The OpenBLAS core whose kernels a CPU with these ``/proc/cpuinfo`` flags runs best and safely, or None
    when no core beyond the fallback fits."""
    if flags >= _AVX512:
        return "Cooperlake" if "avx512_bf16" in flags else "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def cpu_flags(cpuinfo: Path = CPUINFO) -> set[str]:
    """The CPU's feature flags (Linux; elsewhere none)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def numpy_openblas_core() -> str | None:
    """The core whose kernels this interpreter's numpy runs (threadpoolctl reads it from OpenBLAS); None when
    numpy does not carry its own OpenBLAS (a system BLAS is the system's to keep current)."""
    import numpy  # noqa: F401 - loads the OpenBLAS that threadpoolctl inspects
    import threadpoolctl

    for library in threadpoolctl.threadpool_info():
        # a wheel's own copy sits in numpy.libs/ (scipy's, if loaded, in scipy.libs/)
        if library.get("internal_api") == "openblas" and Path(library["filepath"]).parent.name == "numpy.libs":
            return library.get("architecture")
    return None


def steps_environment(environ: dict[str, str]) -> dict[str, str]:
    """What tritonserver's environment needs beyond ``environ`` for the steps' numpy to run this CPU's kernels:
    ``{OPENBLAS_CORETYPE: core}`` where numpy's OpenBLAS fell back to Prescott on a CPU with AVX2 or AVX-512,
    else nothing (one already set is the operator's choice, kept)."""
    if CORETYPE_VARIABLE in environ or numpy_openblas_core() != FALLBACK_CORE:
        return {}
    core = core_for_flags(cpu_flags())
    return {CORETYPE_VARIABLE: core} if core else {}
