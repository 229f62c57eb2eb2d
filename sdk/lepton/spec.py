"""The deployable description of a function: everything `@lepton.function(...)` records.

A `FunctionSpec` is plain, validated, JSON-serialisable data. The embedded platform and the
Knative renderer read only this, never the user's code.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lepton.names import check_bucket_name, check_function_name, check_secret_name
from lepton.triggers import Options, Trigger, spec_error

# Kubernetes resource quantities: "1", "0.5", "500m" for CPU; "512Mi", "1Gi", "128M" for memory.
CPU_QUANTITY = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
MEMORY_QUANTITY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_TIMEOUT = 3600
# HEAD is served wherever GET is, as HTTP requires, so it is never listed on its own.
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Kinds whose callers always POST: a CloudEvent delivery, and the JSON bodies a batch merges.
POST_ONLY_KINDS = {
    "event": "a CloudEvent handler allows POST only (events arrive as POSTs)",
    "batch": "a batch handler allows POST only (a batch merges POSTed JSON bodies)",
}


class Batch(Options):
    """Group concurrent requests into one handler call.

    Example: `batch=lepton.Batch(max_size=32, max_wait_ms=10)` with `def f(xs: list[int])`:
    each caller sends `{"xs": 3}`, the handler sees up to 32 values at once, waiting at most
    10 ms for a batch to fill, and each caller gets its own element of the returned list.
    """

    max_size: int = Field(default=32, ge=1, le=4096)
    max_wait_ms: float = Field(default=10, ge=0, le=60_000)


class Retries(Options):
    """How the platform retries a failed attempt of an async job (`fn.spawn`, `Prefer: respond-async`).

    Example: `retries=lepton.Retries(max_retries=3, backoff="exponential", delay=1, max_delay=60)`
    tries up to 4 times, waiting 1 s, 2 s and 4 s between attempts; `retries=3` is the same.
    The function's `timeout` applies to each attempt.
    """

    max_retries: int = Field(default=0, ge=0, le=100)
    backoff: Literal["linear", "exponential"] = "exponential"
    delay: float = Field(default=1.0, gt=0, le=3600)
    max_delay: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Retries:
        if self.max_delay < self.delay:
            raise ValueError(f"max_delay ({self.max_delay:g}) must not be below delay ({self.delay:g})")
        return self

    def backoff_seconds(self, attempt: int) -> float:
        """Wait before retry number `attempt` (1-based), capped at `max_delay`."""
        wait = self.delay * attempt if self.backoff == "linear" else self.delay * 2.0 ** (attempt - 1)
        return min(wait, self.max_delay)


class HandlerInfo(BaseModel):
    """How the runtime calls the handler; derived from its signature, not set by users."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    attr: str
    is_class: bool = False
    is_async: bool = False
    input_schema: dict[str, Any] = Field(default_factory=dict)
    output_schema: dict[str, Any] = Field(default_factory=dict)


class FunctionSpec(BaseModel):
    """Everything `@lepton.function(...)` recorded about one function, validated: the
    platform and the Knative renderer deploy from this alone, never from the user's code.

    Frozen and JSON-serialisable (`fn.spec.model_dump(mode="json")` is what an artifact's
    manifest holds); `FunctionSpec.build(...)` reports a bad option as one `SpecError` line.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    cpu: str = "1"
    memory: str = "512Mi"
    gpu: int = Field(default=0, ge=0, le=16)
    min_scale: int = Field(default=0, ge=0)
    max_scale: int = Field(default=10, ge=1)
    concurrency: int = Field(default=0, ge=0)
    target: float | None = Field(default=None, gt=0)
    scale_down_after: float = Field(default=60, gt=0, le=86_400)
    timeout: float = Field(default=300, gt=0, le=MAX_TIMEOUT)
    max_queue: int | None = Field(default=None, gt=0, le=1_000_000)  # None: the platform's limits.max_queued_requests
    buckets: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    calls: tuple[str, ...] = ()  # private functions this one may invoke with its scoped token
    requirements: tuple[str, ...] = ()
    public: bool = False
    triggers: tuple[Trigger, ...] = ()
    batch: Batch | None = None
    methods: tuple[str, ...] = ("POST",)
    retries: Retries = Field(default_factory=Retries)
    handler: HandlerInfo | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_function_name(value)

    @field_validator("cpu")
    @classmethod
    def _cpu(cls, value: str) -> str:
        value = str(value)
        if not CPU_QUANTITY.match(value) or value in ("0", "0m"):
            raise ValueError(f"{value!r} is not a CPU quantity; use e.g. '1', '0.5' or '500m'")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if not MEMORY_QUANTITY.match(value):
            raise ValueError(f"{value!r} is not a memory quantity; use e.g. '512Mi' or '2Gi'")
        return value

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            check_bucket_name(name)
        return tuple(dict.fromkeys(value))

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not a valid environment variable name")
            if key.startswith("LEPTON_"):
                raise ValueError(f"{key!r}: the LEPTON_ prefix is reserved for the platform")
        return value

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            check_secret_name(name)
        return tuple(dict.fromkeys(value))

    @field_validator("calls")
    @classmethod
    def _calls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            check_function_name(name)
        return tuple(dict.fromkeys(value))

    @field_validator("requirements")
    @classmethod
    def _requirements(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            return value
        from packaging.requirements import InvalidRequirement, Requirement  # 25 ms to import

        for req in value:
            try:
                Requirement(req)
            except InvalidRequirement as exc:
                reason = str(exc).splitlines()[0]
                raise ValueError(f"{req!r} is not a pip requirement: {reason}") from None
        return value

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("give at least one HTTP method, e.g. ['POST']")
        methods = tuple(dict.fromkeys(method.upper() for method in value))
        for method in methods:
            if method == "HEAD":
                raise ValueError("HEAD is implied by GET: list 'GET' instead")
            if method not in HTTP_METHODS:
                raise ValueError(f"{method!r} is not a method functions serve; use {', '.join(HTTP_METHODS)}")
        return methods

    @model_validator(mode="after")
    def _consistent(self) -> FunctionSpec:
        if clash := sorted(set(self.secrets) & set(self.env)):
            raise ValueError(f"{clash[0]!r} is both in env= and in secrets=; a secret sets that variable")
        if self.min_scale > self.max_scale:
            raise ValueError(f"min_scale ({self.min_scale}) must not exceed max_scale ({self.max_scale})")
        if self.concurrency and self.target and self.target > self.concurrency:
            raise ValueError(f"target ({self.target:g}) must not exceed concurrency ({self.concurrency}), the hard per-replica limit")
        if self.batch and self.concurrency and self.concurrency < self.batch.max_size:
            raise ValueError(f"concurrency ({self.concurrency}) is below batch.max_size ({self.batch.max_size}): a batch could never fill")
        kind = self.handler.kind if self.handler else None
        if kind in POST_ONLY_KINDS and self.methods != ("POST",):
            raise ValueError(f"methods: {POST_ONLY_KINDS[kind]}")
        return self

    @classmethod
    def build(cls, **options: Any) -> FunctionSpec:
        """Validate decorator options, raising one-line `SpecError`s."""
        name = options.get("name", "?")
        try:
            return cls(**options)
        except ValidationError as exc:
            raise spec_error(f"function {name!r}", exc) from None

    @property
    def autoscale_target(self) -> float:
        """In-flight requests per replica the autoscaler aims for (Knative's defaults)."""
        if self.target:
            return self.target
        if self.concurrency:
            return max(1.0, self.concurrency * 0.7)
        return 100.0 if self.batch else 10.0
