"""The stubs of a real tritonserver started by ``local_triton`` (``make serve``, the tests, the benchmarks) run
with the steps' environment (``triton_steps.blas``): on a CPU numpy's OpenBLAS does not know, its kernels named."""

from __future__ import annotations

import os

import psutil

from local_triton.tritonserver import LocalTriton
from stub_health import processes
from triton_steps import blas


def test_every_stub_inherits_the_steps_environment(triton: LocalTriton) -> None:
    stubs = processes.find(triton.ports.grpc)
    assert stubs is not None and stubs.pids, "no stubs of the test server seen"
    expected = blas.steps_environment({k: v for k, v in os.environ.items() if k != blas.CORETYPE_VARIABLE})
    wanted = expected.get(blas.CORETYPE_VARIABLE) or os.environ.get(blas.CORETYPE_VARIABLE)
    for pid, instance in stubs.pids.items():
        assert psutil.Process(pid).environ().get(blas.CORETYPE_VARIABLE) == wanted, instance
