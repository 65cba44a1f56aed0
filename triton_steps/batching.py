"""How the local onnxruntime step (``triton_steps.onnx_model``) splits what Triton hands it into runs.

Triton's dynamic batcher gives one ``execute`` call several requests. Requests whose inputs share shapes run as
one batch, as Triton's native onnxruntime backend runs them (variable-length inputs are never padded, so a
batch never changes a score), except that an example larger than the network step's
``contract.BATCHED_EXAMPLE_LIMIT`` runs alone: the step always runs on the CPU, where batching big examples
costs more per clip than it saves (measured in ``export.cpu_plan``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

Shapes = tuple[tuple[int, ...], ...]  # one request's input shapes, batch dimension left out, in input order


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
