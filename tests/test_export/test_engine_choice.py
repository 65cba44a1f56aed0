"""``--engine auto``'s timing: the candidates take turns, so a machine that slows down while it measures still
gets the faster engine; and they are ranked over every workload the network step will be given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export import engine_choice
from triton_steps import engines

ONE_CLIP = engine_choice.Workload({"x": np.zeros((1, 16000), np.float32)}, 1, "1 clip of 1 s")
BATCH = engine_choice.Workload({"x": np.zeros((8, 16000), np.float32)}, 8, "8 clips of 1 s")


class SlowingMachine:
    """A clock on a machine that gets 5% slower with every run: a run of ``cost`` takes ``cost x (1 + 0.05 n)``
    for the n-th run of any engine."""

    def __init__(self) -> None:
        self.now = 0.0
        self.runs: list[str] = []

    def engine(self, name: str, cost: float | dict[int, float]) -> engines.Engine:
        """An engine whose run costs ``cost``, or ``cost[batch]`` by the feed's batch."""
        machine = self

        class Timed:
            def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
                run_cost = cost if isinstance(cost, float) else cost[len(feed["x"])]
                machine.now += run_cost * (1 + 0.05 * len(machine.runs))
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

    times = engine_choice.fastest(candidates, [ONE_CLIP], threads=2)

    assert min(times, key=times.__getitem__) == engines.ONNXRUNTIME
    timed = machine.runs[len(costs) :]  # after one warm-up run each
    assert timed == [*costs] * engine_choice.TIMED_RUNS
    # the medians are the third round's: runs 6 and 7 of the machine, counting the warm-ups 0 and 1
    assert times == pytest.approx({engines.OPENVINO: 1.0 * 1.30 * 1000, engines.ONNXRUNTIME: 0.93 * 1.35 * 1000})


def test_the_faster_per_clip_over_every_workload_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime is 10% faster on a clip alone, OpenVINO twice as fast per clip on a batch of eight (as it runs
    batched short clips): over both, OpenVINO; each time is per clip, the geometric mean of the two."""
    machine = SlowingMachine()
    costs = {engines.OPENVINO: {1: 1.0, 8: 2.0}, engines.ONNXRUNTIME: {1: 0.9, 8: 4.0}}
    monkeypatch.setattr(engine_choice.time, "perf_counter", lambda: machine.now)
    monkeypatch.setattr(engine_choice.time, "sleep", lambda _: None)
    monkeypatch.setattr(engine_choice.engines, "load", lambda name, *_: machine.engine(name, costs[name]))
    monkeypatch.setattr(engine_choice, "TIMED_RUNS", 1)  # without the drift: the first runs after the warm-ups
    candidates = {name: engine_choice.Candidate(name, Path("model.onnx")) for name in costs}

    alone = engine_choice.fastest(candidates, [ONE_CLIP], threads=2)
    machine.runs.clear()
    both = engine_choice.fastest(candidates, [ONE_CLIP, BATCH], threads=2)

    assert min(alone, key=alone.__getitem__) == engines.ONNXRUNTIME
    assert min(both, key=both.__getitem__) == engines.OPENVINO
    timed = machine.runs[2 * len(costs) :]  # after a warm-up run of each workload on each engine
    assert timed == [*costs] * 2
    drift = [1 + 0.05 * n for n in range(4, 8)]  # the timed runs are the machine's 5th to 8th
    expected = {
        engines.OPENVINO: (1.0 * drift[0] * 2.0 / 8 * drift[2]) ** 0.5 * 1000,
        engines.ONNXRUNTIME: (0.9 * drift[1] * 4.0 / 8 * drift[3]) ** 0.5 * 1000,
    }
    assert both == pytest.approx(expected)
