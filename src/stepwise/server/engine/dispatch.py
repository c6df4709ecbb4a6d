"""Which dispatch of a job an SDK is answering, and whether the server still waits for it.

Every call request names its job (``ctx.qi_id``, header ``x-inngest-job-id``) and the
generation the job was in when it was sent (header ``x-inngest-generation-id``); the JS SDK
echoes the queue item and the generation in each checkpoint it posts while the call is
still open. A job starts a new generation whenever the server gives up on a dispatch (a
failed attempt, a lease that ran out, a restart, a server fault). A checkpoint from an
older generation, or for a job that is gone, comes from a call nobody waits for any more:
it is refused, and the SDK stops instead of running steps that the new dispatch runs too.

The reference server looks the job up only once a call is 10 s old, since its queue never
re-dispatches sooner. Ours re-dispatches at once after a restart, and the lookup costs
nothing inside the transaction that writes the checkpoint, so every checkpoint that names
its dispatch is checked.
"""

from __future__ import annotations

from ..store.records import DispatchFence

# Job ids are 64-bit signed integers in every backend; a larger reference is not ours.
_MAX_JOB_ID = 2**63 - 1


def queue_item_ref(job_id: int) -> str:
    """The opaque queue-item reference a call carries as ``ctx.qi_id``."""
    return str(job_id)


def fence_of(queue_item: str | None, generation: int | None) -> DispatchFence | None:
    """What a checkpoint is checked against, or None if it names no dispatch of ours.

    Without a generation or a readable queue item there is nothing to compare, and the
    checkpoint is saved unchecked (as the reference does when it cannot look the item up).
    """
    if generation is None or queue_item is None:
        return None
    # The length check first: int() refuses (raises on) strings of thousands of digits.
    if not (queue_item.isascii() and queue_item.isdigit()) or len(queue_item) > 20:
        return None
    job_id = int(queue_item)
    if job_id > _MAX_JOB_ID:
        return None
    return DispatchFence(job_id=job_id, generation=generation)


def is_stale(fence: DispatchFence, current_generation: int | None) -> bool:
    """Whether the fenced dispatch was superseded; ``current_generation`` is the job's
    generation now, or None if the job no longer exists (its call was answered)."""
    return current_generation is None or current_generation != fence.generation
