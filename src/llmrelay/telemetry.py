"""OpenTelemetry traces: for each request that reached a model, a server span for the
inbound request, a span for routing it through the model's deployments, and a client
span for each upstream attempt, with the GenAI semantic-convention attributes.

Spans are built after the request has ended, from its trace, which already
holds every timing they need; so serving a request does no tracing work at all,
and with no ``otlp_endpoint`` configured nothing here is even imported. A
client's ``traceparent`` header makes the request's spans part of its trace.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace as otel
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import __version__
from .trace import Trace

SERVICE = "llmrelay"
EXPORT_DELAY_MS = 1000


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class Telemetry:
    def __init__(self, endpoint: str, deployments: Mapping[str, tuple[str, str]]) -> None:
        """``deployments``: each deployment id's provider and upstream model id."""
        resource = Resource.create({"service.name": SERVICE, "service.version": __version__})
        self.provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
        self.provider.add_span_processor(
            BatchSpanProcessor(exporter, schedule_delay_millis=EXPORT_DELAY_MS)
        )
        self.tracer = self.provider.get_tracer("llmrelay", __version__)
        self.deployments = deployments
        self.propagator = TraceContextTextMapPropagator()

    def close(self) -> None:
        self.provider.shutdown()  # sends what is still held

    def export(self, trace: Trace, method: str, path: str) -> None:
        """The spans of a request that ended."""
        start = _ns(trace.created)
        end = _ns(trace.created + trace.duration)
        parent = self.propagator.extract({"traceparent": trace.parent}) if trace.parent else None
        inbound = self.tracer.start_span(
            f"{method} {path}", context=parent, kind=SpanKind.SERVER, start_time=start
        )
        inbound.set_attributes(
            {
                "http.request.method": method,
                "url.path": path,
                "http.response.status_code": trace.status,
                "llmrelay.request_id": trace.request_id,
                "llmrelay.cache": trace.cache or "",
                "llmrelay.cost_usd": trace.cost,
                "gen_ai.request.model": trace.model or "",
            }
        )
        if trace.key is not None:
            inbound.set_attribute("llmrelay.key_id", trace.key.id)
        if trace.status >= 500:
            inbound.set_status(Status(StatusCode.ERROR))
        context = otel.set_span_in_context(inbound)
        routing = self.tracer.start_span(f"route {trace.model}", context=context, start_time=start)
        routing.set_attribute("llmrelay.attempts", trace.attempts)
        attempt_context = otel.set_span_in_context(routing)
        for number, (deployment, began, ended) in enumerate(trace.tries, start=1):
            self._attempt(trace, attempt_context, number, deployment, began, ended, end)
        routing.end(end_time=end)
        inbound.end(end_time=end)

    def _attempt(
        self,
        trace: Trace,
        context: Context,
        number: int,
        deployment: str,
        began: float,
        ended: float | None,
        request_end: int,
    ) -> None:
        provider, upstream_model = self.deployments.get(deployment, ("", ""))
        last = number == len(trace.tries)
        span = self.tracer.start_span(
            f"chat {upstream_model}",
            context=context,
            kind=SpanKind.CLIENT,
            start_time=_ns(trace.moment(began)),
        )
        span.set_attributes(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider,
                "gen_ai.request.model": upstream_model,
                "llmrelay.deployment": deployment,
                "llmrelay.attempt": number,
            }
        )
        usage = trace.usage
        if last and usage is not None:
            span.set_attributes(
                {
                    "gen_ai.response.model": upstream_model,
                    "gen_ai.usage.input_tokens": usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": usage.completion_tokens,
                    "llmrelay.usage.estimated": usage.estimated,
                }
            )
        if not last or trace.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        # A stream's attempt lasts until the request's end; a whole reply's, until it came.
        span.end(end_time=request_end if last or ended is None else _ns(trace.moment(ended)))
