"""`@lepton.function`: records a handler and its options as a `Function`.

The decorator only records. Nothing is registered globally: the loader finds `Function`
objects by scanning the user's module, so importing a module twice (or two modules in one
test) never leaks state.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any, Sequence

from lepton.handlers import Signature, inspect_handler
from lepton.spec import Batch, FunctionSpec, HandlerInfo
from lepton.triggers import BucketTrigger, CronTrigger, EventTrigger

_TRIGGER_TYPES = (EventTrigger, CronTrigger, BucketTrigger)


class Function:
    """A decorated handler: callable locally, with a validated `spec` and `.remote()`.

    Example:
        @lepton.function(max_scale=4)
        def add(a: int, b: int) -> int:
            return a + b

        add(1, 2)                # 3, runs here
        add.remote(a=1, b=2)     # 3, runs on the platform
        add.spec.model_dump()    # the deployable description
    """

    def __init__(self, obj: Any, spec: FunctionSpec, signature: Signature) -> None:
        self.obj = obj
        self.spec = spec
        self.signature = signature
        self._instance: Any = None
        self._lock = threading.Lock()
        self.__doc__ = obj.__doc__
        self.__name__ = getattr(obj, "__name__", spec.name)
        self.__wrapped__ = obj

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def is_class(self) -> bool:
        return inspect.isclass(self.obj)

    def __repr__(self) -> str:
        return f"<lepton.Function {self.name!r} ({self.signature.kind})>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.is_class:
            return self.obj(*args, **kwargs)
        with self._lock:
            if self._instance is None:
                instance = self.obj()
                setup = getattr(instance, "setup", None)
                if setup is not None:
                    result = setup()
                    if inspect.isawaitable(result):
                        import asyncio

                        asyncio.run(result)
                self._instance = instance
        return self._instance(*args, **kwargs)

    def remote(self, *, client: Any = None, **kwargs: Any) -> Any:
        """Invoke the deployed function through the platform; a generator for streaming kinds."""
        from lepton.client import Client

        if client is not None:
            return client.stream(self.name, kwargs) if self.signature.kind == "stream" else client.invoke(self.name, kwargs)
        if self.signature.kind == "stream":
            return self._stream_once(kwargs)
        with Client() as own:
            return own.invoke(self.name, kwargs)

    def _stream_once(self, kwargs: dict[str, Any]) -> Any:
        """Stream on a client of its own, closed when the stream ends."""
        from lepton.client import Client

        with Client() as own:
            yield from own.stream(self.name, kwargs)


def function(
    obj: Any = None,
    *,
    name: str | None = None,
    cpu: str | int | float = "1",
    memory: str = "512Mi",
    gpu: int = 0,
    min_scale: int = 0,
    max_scale: int = 10,
    concurrency: int = 0,
    target: float | None = None,
    scale_down_after: float = 60,
    timeout: float = 300,
    buckets: Sequence[str] = (),
    env: dict[str, str] | None = None,
    secrets: Sequence[str] = (),
    calls: Sequence[str] = (),
    requirements: Sequence[str] = (),
    public: bool = False,
    triggers: Sequence[Any] = (),
    batch: Batch | None = None,
) -> Any:
    """Make a handler a Lepton function. See ARCHITECTURE.md, contract 1, for every option.

    Works bare (`@lepton.function`) or with options (`@lepton.function(max_scale=4)`).
    """

    def decorate(target_obj: Any) -> Function:
        if isinstance(target_obj, Function):
            raise _spec_error(target_obj.name, "is decorated twice; keep one @lepton.function")
        if not callable(target_obj):
            raise _spec_error(str(name), f"@lepton.function needs a function or class, got {target_obj!r}")
        fn_name = name if name is not None else target_obj.__name__.replace("_", "-").lower()
        for trig in triggers:
            if not isinstance(trig, _TRIGGER_TYPES):
                raise _spec_error(
                    fn_name,
                    f"unknown trigger {trig!r}; build triggers with lepton.on_event, lepton.on_cron or lepton.on_bucket",
                )
        if batch is not None and not isinstance(batch, Batch):
            raise _spec_error(fn_name, f"batch= takes lepton.Batch(...), got {batch!r}")
        signature = inspect_handler(target_obj, batched=batch is not None)
        handler = HandlerInfo(
            kind=signature.kind,
            attr=target_obj.__name__,
            is_class=inspect.isclass(target_obj),
            is_async=signature.is_async,
            input_schema=signature.input_schema(),
            output_schema=signature.output_schema(),
        )
        spec = FunctionSpec.build(
            name=fn_name, cpu=str(cpu), memory=memory, gpu=gpu, min_scale=min_scale,
            max_scale=max_scale, concurrency=concurrency, target=target,
            scale_down_after=scale_down_after, timeout=timeout, buckets=tuple(buckets),
            env=dict(env or {}), secrets=tuple(secrets), calls=tuple(calls),
            requirements=tuple(requirements),
            public=public, triggers=tuple(triggers), batch=batch, handler=handler,
        )
        return Function(target_obj, spec, signature)

    if obj is not None:
        return decorate(obj)
    return decorate


def _spec_error(name: str, message: str) -> Exception:
    from lepton.errors import SpecError

    return SpecError(f"function {name!r}: {message}")


def find_functions(namespace: dict[str, Any]) -> dict[str, Function]:
    """The `Function`s defined in a module namespace, by function name."""
    found: dict[str, Function] = {}
    for value in namespace.values():
        if isinstance(value, Function):
            if value.name in found and found[value.name] is not value:
                raise _spec_error(value.name, "is defined twice; use 'name=' to give each function a unique name")
            found[value.name] = value
    return found
