"""JSON logs with the request id, Prometheus metrics, and OpenTelemetry traces over OTLP."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from collections.abc import Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        for key in ("route", "status", "duration_ms", "client"):
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        return json.dumps(doc)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("dex")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dex_api_requests_total",
            "Requests by route and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dex_api_request_duration_seconds",
            "Request latency by route",
            ["route", "method"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.predictions = Counter(
            "dex_api_predictions_total",
            "Predictions served",
            ["model_version"],
            registry=self.registry,
        )
        self.model = Gauge(
            "dex_api_model_info",
            "The model being served (value 1)",
            ["name", "version", "alias"],
            registry=self.registry,
        )
        self.cache = Counter(
            "dex_api_forecast_cache_total",
            "Forecast cache lookups",
            ["result"],
            registry=self.registry,
        )
        self.limited = Counter(
            "dex_api_rate_limited_total", "Requests refused with 429", registry=self.registry
        )
        # per model version and role (champion / challenger): what a rollout compares
        self.model_requests = Counter(
            "dex_api_model_requests_total",
            "Model calls by version and role (shadow scores included), ok or error",
            ["model_version", "role", "outcome"],
            registry=self.registry,
        )
        self.model_latency = Histogram(
            "dex_api_model_latency_seconds",
            "Time in the model per call, by version and role",
            ["model_version", "role"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
        )
        self.prediction_value = Histogram(
            "dex_api_prediction_value_celsius",
            "Predicted next-day maximum temperature, by version and role",
            ["model_version", "role"],
            registry=self.registry,
            buckets=tuple(float(b) for b in range(-40, 55, 5)),
        )
        self.shadow_dropped = Counter(
            "dex_api_shadow_dropped_total",
            "Shadow scores dropped because the challenger fell behind",
            registry=self.registry,
        )


def observe_many(histogram: Histogram, values: Sequence[float] | np.ndarray) -> None:
    """Observe a batch in one step per bucket, not one lock round per value: the same
    counts and sum as `observe` called for each (a test holds them equal)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return
    bounds = np.asarray(histogram._upper_bounds, dtype=float)
    # bucket i counts the values v <= bounds[i] that no earlier bucket took
    counts = np.bincount(np.searchsorted(bounds, data, side="left"), minlength=len(bounds))
    for bucket, count in zip(histogram._buckets, counts, strict=False):
        if count:
            bucket.inc(float(count))
    histogram._sum.inc(float(data.sum()))


def configure_tracing(app: object, endpoint: str | None, service: str = "dex-api") -> bool:
    if not endpoint:
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    FastAPIInstrumentor.instrument_app(app)  # type: ignore[arg-type]
    return True
