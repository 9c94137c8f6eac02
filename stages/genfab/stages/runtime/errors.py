"""How a stage says what went wrong; the runtime maps each to a per-sample record or an exit code."""

from __future__ import annotations


class SampleError(Exception):
    """This one sample cannot be produced (unreadable image, nothing segmented, ...).

    The runtime records it with `reason` in the shard's failure list (the seeds'
    `dropped_samples.csv`) and goes on with the next sample. Any other exception raised for a
    sample is recorded the same way, with the exception's class name as the reason.
    """

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.message = message

    def __reduce__(self) -> tuple[type[SampleError], tuple[str, str]]:
        # Keeps the reason when the error crosses a process boundary (CPU worker pools).
        return SampleError, (self.reason, self.message)


class BadInput(Exception):
    """The shard's config or input is unusable as a whole; retrying cannot help.

    The process exits with `EXIT_BAD_INPUT`, which the Job's podFailurePolicy turns into an
    immediately failed index instead of burning retries.
    """


class FatalError(Exception):
    """Stop the shard now (retryable): the environment is broken, not one sample."""
