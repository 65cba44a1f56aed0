"""The network step's CPU plan: auto threads by model size and available CPUs, explicit values kept, and
both written into the network's config, with the batcher's queue delay and the largest example still batched."""

from __future__ import annotations

from pathlib import Path

import pytest

from export import cpu_plan, model_configs
from export.__main__ import parse_args
from export.exporter import ExportError, ExportOptions, export_model
from triton_steps.contract import BATCHED_EXAMPLE_LIMIT, INTRA_OP_THREADS


def test_auto_threads_are_one_for_a_small_model_and_every_cpu_for_a_large_one(monkeypatch) -> None:
    monkeypatch.setattr(cpu_plan, "available_cpus", lambda: 6)
    assert cpu_plan.network_threads(None, 600_000) == 1
    assert cpu_plan.network_threads(None, 95_000_000) == 6
    assert cpu_plan.network_threads(3, 95_000_000) == 3
    assert cpu_plan.network_instances(None) == 1 and cpu_plan.network_instances(4) == 4


def test_auto_single_step_instances_fill_the_cpus_at_the_networks_threads(monkeypatch) -> None:
    monkeypatch.setattr(cpu_plan, "available_cpus", lambda: 6)
    assert cpu_plan.single_step_instances(None, 1) == 6  # a small model: one instance per CPU
    assert cpu_plan.single_step_instances(None, 6) == 1  # a large one already uses every CPU
    assert cpu_plan.single_step_instances(None, 4) == 1 and cpu_plan.single_step_instances(3, 6) == 3


def test_available_cpus_is_within_the_affinity() -> None:
    import os

    assert 1 <= cpu_plan.available_cpus() <= len(os.sched_getaffinity(0))


def test_threads_instances_queue_delay_and_example_limit_reach_the_network_config(checkpoints, tmp_path: Path) -> None:
    options = ExportOptions(name="m", cpu_threads=3, instances=2, queue_delay_ms=2.5, batched_example_limit=7)
    export_model(str(checkpoints["hubert"]), tmp_path, options)
    config = model_configs.parse((tmp_path / "m_onnx" / "config.pbtxt").read_text())
    assert config.parameters[INTRA_OP_THREADS].string_value == "3"
    assert [group.count for group in config.instance_group] == [2]
    assert config.dynamic_batching.max_queue_delay_microseconds == 2500
    assert config.parameters[BATCHED_EXAMPLE_LIMIT].string_value == "7"


def test_examples_past_three_seconds_run_alone_by_default_and_the_limit_cannot_be_negative() -> None:
    assert parse_args(["x"]).batched_example_limit == cpu_plan.BATCHED_EXAMPLE_LIMIT == 3 * 16000
    assert parse_args(["x", "--batched-example-limit", "0"]).batched_example_limit == 0
    with pytest.raises(ExportError, match="--batched-example-limit"):
        ExportOptions(batched_example_limit=-1)


def test_the_queue_delay_defaults_to_zero_and_cannot_be_negative() -> None:
    assert parse_args(["x"]).queue_delay_ms == 0
    assert parse_args(["x", "--queue-delay-ms", "8"]).queue_delay_ms == 8
    with pytest.raises(ExportError, match="--queue-delay-ms"):
        ExportOptions(queue_delay_ms=-1)


def test_the_cli_takes_auto_or_a_count() -> None:
    assert parse_args(["x"]).cpu_threads is None and parse_args(["x"]).instances is None
    assert parse_args(["x", "--cpu-threads", "4", "--instances", "2"]).cpu_threads == 4
    with pytest.raises(SystemExit):
        parse_args(["x", "--cpu-threads", "0"])
