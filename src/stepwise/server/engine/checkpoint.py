"""Async checkpoints: steps the JS SDK ran inside a call that is still open.

With checkpointing on (JS 4.x, whenever a call carries ``ctx.fn_id``) the SDK runs
consecutive ``step.run``s inside one call and posts their results to
``POST /v1/checkpoint/{run}/async`` before going on. Saving them is all there is to do:
no call is scheduled, since the SDK is still running, and the call's own answer (a 206
that ends in ``RunComplete``, or the next steps to plan) goes through the executor as usual.
"""

from __future__ import annotations

from ...protocol import GeneratorOp, Opcode, dumps
from ..store.records import HistoryEntry, HistoryKind, Settled
from .executor import MAX_STEP_OUTPUT, step_input, step_name


class CheckpointRejected(Exception):
    """A checkpoint the server will not save; ``code`` goes in the error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def steps_to_save(ops: list[GeneratorOp], now: int, body_bytes: int) -> list[Settled]:
    """The results a checkpoint carries, in the order the SDK completed them.

    ``body_bytes``: the size of the whole request; no output can be larger.

    ``StepPlanned`` only announces a step about to run and changes no state. A checkpoint
    holds no other op: a step that needs the server (a sleep, a wait, an invoke) ends the
    call instead, and defers are not supported by this server.
    """
    settled: list[Settled] = []
    for op in ops:
        if op.op is Opcode.STEP_PLANNED:
            continue
        if op.op not in (Opcode.STEP_RUN, Opcode.STEP):
            raise CheckpointRejected(
                400, "unsupported_op", f"{op.op.value} cannot be saved by a checkpoint"
            )
        if not op.id:
            raise CheckpointRejected(400, "invalid_checkpoint", "every step needs an id")
        if body_bytes > MAX_STEP_OUTPUT and len(dumps(op.data)) > MAX_STEP_OUTPUT:
            raise CheckpointRejected(
                413,
                "step_output_too_large",
                f"the output of step {op.id} is over {MAX_STEP_OUTPUT} bytes",
            )
        memo = {"data": op.data} if op.op is Opcode.STEP_RUN else op.data
        # Attempt 0: the SDK checkpoints only in a call's first attempt (a retried call
        # hands its one result back instead), and a checkpoint restarts the count.
        entry = HistoryEntry(
            HistoryKind.STEP_COMPLETED, now, op.id, step_name(op), 0, step_input(op)
        )
        settled.append(Settled(op.id, memo, (entry,)))
    return settled
