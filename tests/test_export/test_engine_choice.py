"""``--engine auto``'s timing: the candidates take turns, so a machine that slows down while it measures still
gets the faster engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export import engine_choice
from triton_steps import engines


class SlowingMachine:
    """A clock on a machine that gets 5% slower with every run: a run of ``cost`` takes ``cost x (1 + 0.05 n)``
    for the n-th run of any engine."""

    def __init__(self) -> None:
        self.now = 0.0
        self.runs: list[str] = []

    def engine(self, name: str, cost: float) -> engines.Engine:
        machine = self

        class Timed:
            def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
                machine.now += cost * (1 + 0.05 * len(machine.runs))
                machine.runs.append(name)
                return []

        return Timed()  # type: ignore[return-value]


def test_candidates_take_turns_so_a_slowing_machine_still_picks_the_faster(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime is 7% faster; timed all of one engine's runs before the other's, the drift would have made
    it look 17% slower (1.35 s against 1.15, at the medians)."""
    machine = SlowingMachine()
    costs = {engines.OPENVINO: 1.0, engines.ONNXRUNTIME: 0.93}
    monkeypatch.setattr(engine_choice.time, "perf_counter", lambda: machine.now)
    monkeypatch.setattr(engine_choice.time, "sleep", lambda _: None)
    monkeypatch.setattr(engine_choice.engines, "load", lambda name, *_: machine.engine(name, costs[name]))
    candidates = {name: engine_choice.Candidate(name, Path("model.onnx")) for name in costs}

    times = engine_choice.fastest(candidates, {}, threads=2)

    assert min(times, key=times.__getitem__) == engines.ONNXRUNTIME
    timed = machine.runs[len(costs) :]  # after one warm-up run each
    assert timed == [*costs] * engine_choice.TIMED_RUNS
    # the medians are the third round's: runs 6 and 7 of the machine, counting the warm-ups 0 and 1
    assert times == pytest.approx({engines.OPENVINO: 1.0 * 1.30 * 1000, engines.ONNXRUNTIME: 0.93 * 1.35 * 1000})
