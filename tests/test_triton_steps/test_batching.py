"""How the local onnxruntime step splits Triton's requests into runs: same shapes together, big examples alone."""

from __future__ import annotations

from triton_steps import batching

SECOND = ((16000,),)  # one waveform input of 1 s at 16 kHz
TEN_SECONDS = ((160000,),)
AST = ((1024, 128),)


def test_same_shapes_run_together_and_other_shapes_apart() -> None:
    assert batching.runs([SECOND, ((8000,),), SECOND, SECOND], 48_000) == [[0, 2, 3], [1]]


def test_examples_over_the_limit_run_alone_while_smaller_ones_still_batch() -> None:
    requests = [TEN_SECONDS, SECOND, TEN_SECONDS, SECOND, AST, AST]
    assert batching.runs(requests, 48_000) == [[0], [2], [1, 3], [4], [5]]


def test_an_example_at_the_limit_is_still_batched() -> None:
    assert batching.runs([((48000,),)] * 2, 48_000) == [[0, 1]]
    assert batching.runs([((48001,),)] * 2, 48_000) == [[0], [1]]


def test_the_largest_input_counts_not_the_sum() -> None:
    """An attention mask beside the waveform doubles the elements, not the work."""
    with_mask = ((30000,), (30000,))
    assert batching.runs([with_mask, with_mask], 48_000) == [[0, 1]]


def test_no_limit_batches_every_size() -> None:
    """0: what a repository exported before the limit gets, and what Triton's native backend does."""
    assert batching.runs([TEN_SECONDS] * 3 + [AST] * 2, 0) == [[0, 1, 2], [3, 4]]


def test_in_runs_answers_each_request_from_its_run_in_order() -> None:
    calls: list[list[int]] = []

    def run(indices: list[int]) -> list[str]:
        calls.append(indices)
        return [f"row {i}" for i in indices]

    results = batching.in_runs([SECOND, AST, SECOND, None, SECOND], 48_000, run)
    assert calls == [[0, 2, 4], [1]]
    assert results == ["row 0", "row 1", "row 2", None, "row 4"]


def test_a_run_that_raises_fails_its_own_requests_only() -> None:
    """A request that failed before (None) is skipped; the run of 8000-sample clips fails, the others answer."""
    broken = RuntimeError("engine failed")

    def run(indices: list[int]) -> list[int]:
        if 1 in indices:
            raise broken
        return indices

    results = batching.in_runs([SECOND, ((8000,),), None, SECOND, ((8000,),)], 48_000, run)
    assert results == [0, broken, None, 3, broken]
