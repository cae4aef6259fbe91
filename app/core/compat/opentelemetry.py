"""opentelemetry-sdk (pinned 1.45.1): the batch span processor's dropped spans and a bounded shutdown.

`BatchSpanProcessor` counts the spans it drops (queue full, or ended after shutdown) only through
the SDK's own experimental metrics, turned on process-wide by OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED
and read through an OpenTelemetry meter; and its public `shutdown()` waits up to 30 s for the last
export whatever the collector does. Both are reached through its `_batch_processor`
(`opentelemetry.sdk._shared_internal.BatchProcessor`): its `_metrics` object (`drop_items(count,
error_type)`, `finish_items`, `register_queue_size`) and its `shutdown(timeout_millis)`.
"""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.sdk.trace.export import BatchSpanProcessor


class _DropCounter:
    """What the batch processor reports of its queue, reduced to the spans it drops."""

    def __init__(self, on_drop: Callable[[int, str], None]) -> None:
        self.on_drop = on_drop

    def register_queue_size(self, get_queue_size: Callable[[], int]) -> None:
        pass

    def drop_items(self, count: int, error_type: str = "queue_full") -> None:
        self.on_drop(count, error_type)

    def finish_items(self, count: int) -> None:
        pass


def count_dropped_spans(processor: BatchSpanProcessor, on_drop: Callable[[int, str], None]) -> None:
    """`on_drop(count, reason)` each time the processor drops spans ("queue_full", "already_shutdown")."""
    processor._batch_processor._metrics = _DropCounter(on_drop)


def shutdown_within(processor: BatchSpanProcessor, seconds: float) -> None:
    """Stop the processor, waiting at most about `seconds` for its last export."""
    processor._batch_processor.shutdown(timeout_millis=seconds * 1000)


def no_connect_spans() -> None:
    """Undo what `SQLAlchemyInstrumentor().instrument()` (opentelemetry-instrumentation-sqlalchemy,
    pinned 0.66b1) does to `Engine.connect`, which it wraps (wrapt) to make a "connect" span each
    time a connection is taken from the pool: one more span on every request (bench/RESULTS.md says
    what it cost). Its statements' spans, made by its engine events, stay."""
    from opentelemetry.instrumentation.utils import unwrap
    from sqlalchemy.engine.base import Engine

    unwrap(Engine, "connect")
