"""How the steps that run the network on the CPU (``triton_steps.onnx_model``, ``triton_steps.single_step_model``)
split what Triton hands them into runs.

Triton's dynamic batcher gives one ``execute`` call several requests. Requests whose inputs share shapes run as
one batch, as Triton's native onnxruntime backend runs them (variable-length inputs are never padded, so a
batch never changes a score), except that an example larger than the network step's
``contract.BATCHED_EXAMPLE_LIMIT`` runs alone: the step always runs on the CPU, where batching big examples
costs more per clip than it saves (measured in ``export.cpu_plan``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TypeVar

Shapes = tuple[tuple[int, ...], ...]  # one request's input shapes, batch dimension left out, in input order
Result = TypeVar("Result")


def runs(requests: Sequence[Shapes], example_limit: int) -> list[list[int]]:
    """Indices of ``requests`` to run together, each list one onnxruntime run. ``example_limit``: the most
    elements of an example's largest input (an attention mask adds no work) still batched; 0: no limit."""
    groups: dict[Shapes, list[int]] = defaultdict(list)
    for index, shapes in enumerate(requests):
        groups[shapes].append(index)
    result = []
    for shapes, indices in groups.items():
        result += [indices] if batched(shapes, example_limit) else [[index] for index in indices]
    return result


def batched(shapes: Shapes, example_limit: int) -> bool:
    """Whether an example of these input shapes runs in a batch with others (else alone)."""
    elements = max((math.prod(shape) for shape in shapes), default=0)
    return not 0 < example_limit < elements


def in_runs(
    shapes: Sequence[Shapes | None], example_limit: int, run: Callable[[list[int]], list[Result]]
) -> list[Result | Exception | None]:
    """Each request's result, ``run`` called once per run of ``runs`` with its requests' indices (it returns one
    result per index, in order). A request without shapes (it failed before) is skipped: None. A run that
    raises gives its exception to each of its requests, and the other runs go on."""
    present = [index for index, request in enumerate(shapes) if request is not None]
    results: list[Result | Exception | None] = [None] * len(shapes)
    for group in runs([shapes[index] for index in present], example_limit):
        indices = [present[position] for position in group]
        try:
            outputs = run(indices)
        except Exception as error:  # noqa: BLE001 - this run's requests fail, the others go on
            outputs = [error] * len(indices)
        for index, output in zip(indices, outputs, strict=True):
            results[index] = output
    return results
