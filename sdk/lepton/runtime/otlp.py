"""Span export over OTLP/HTTP with the OpenTelemetry SDK (the `otlp` extra), for the platform
and for replicas. Imported only when an endpoint is configured; spans are handed to the SDK's
batch processor, whose thread sends them, so nothing is sent on the request path.

Spans are started from, and report, `TraceParent`s: the caller of `start` forwards the span's
own context, so the next hop's parent is this span.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags, set_span_in_context

from lepton.runtime.tracing import TraceParent

__all__ = ["Exporter", "Span"]


def traces_url(endpoint: str) -> str:
    """The collector's base URL (`http://host:4318`) as OTLP/HTTP's traces URL."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


class Exporter:
    def __init__(self, endpoint: str, resource: Mapping[str, Any]) -> None:
        self.provider = TracerProvider(resource=Resource.create({"process.pid": os.getpid(), **resource}))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
        self.tracer = self.provider.get_tracer("lepton")

    def start(
        self, name: str, parent: TraceParent | None, kind: Literal["server", "consumer"], attributes: Mapping[str, Any]
    ) -> tuple[Span, TraceParent]:
        """A span under `parent` (a new trace without one), and its context to send on."""
        context = Context()  # never OpenTelemetry's own current context: the caller says the parent
        if parent is not None:
            remote = SpanContext(
                int(parent.trace_id, 16), int(parent.parent_id, 16), is_remote=True, trace_flags=TraceFlags(int(parent.flags, 16))
            )
            context = set_span_in_context(NonRecordingSpan(remote), context)
        span = self.tracer.start_span(name, context=context, kind=SpanKind[kind.upper()], attributes=attributes)
        ours = span.get_span_context()
        return span, TraceParent(
            format(ours.trace_id, "032x"),
            format(ours.span_id, "016x"),
            format(ours.trace_flags, "02x"),
            parent.state if parent is not None else None,
        )

    @staticmethod
    def end(span: Span, status: int, attributes: Mapping[str, Any] | None = None) -> None:
        """End a span with the HTTP status it answered (0: none came); 5xx and none are errors."""
        if attributes:
            span.set_attributes(attributes)
        if status:
            span.set_attribute("http.response.status_code", status)
        if status == 0 or status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def close(self) -> None:
        """Send what is still batched, then stop the export thread."""
        self.provider.shutdown()
