"""Handler kinds, chosen from the handler's signature.

- json: typed parameters (or one pydantic model); the request body is a JSON object of them.
- event: one parameter annotated `lepton.CloudEvent`; returning a CloudEvent makes it the reply.
- stream: a (async) generator; each yielded item is one chunk or SSE message.
- batch: with `batch=`, parameters are `list[T]`; each caller sends single values.
- request: one parameter annotated `lepton.Request`; the whole HTTP request, any sub-path.
A class with `setup()` and `__call__` is any of these, through its `__call__`. The kind `asgi`
is not a handler but a whole ASGI app, from `@lepton.asgi` (see `ASGI_SIGNATURE`).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, create_model

from lepton.errors import SpecError

JSON, EVENT, STREAM, BATCH, REQUEST, ASGI = "json", "event", "stream", "batch", "request", "asgi"


def _is_cloudevent(annotation: Any) -> bool:
    from lepton.runtime.events import EVENT_CLASSES

    return isinstance(annotation, type) and issubclass(annotation, EVENT_CLASSES)


def _is_request(annotation: Any) -> bool:
    from lepton.web import Request

    return annotation is Request


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


@dataclass(frozen=True)
class Signature:
    """What the runtime needs to call one handler."""

    kind: str
    is_async: bool
    input_model: type[BaseModel] | None
    # Set when the handler takes one pydantic model: the body is that model, passed whole.
    model_param: str | None
    output_adapter: TypeAdapter[Any] | None

    def input_schema(self) -> dict[str, Any]:
        return self.input_model.model_json_schema() if self.input_model else {}

    def output_schema(self) -> dict[str, Any]:
        return self.output_adapter.json_schema() if self.output_adapter else {}

    def arguments(self, validated: BaseModel) -> dict[str, Any]:
        """Keyword arguments for the handler from a validated input model."""
        if self.model_param:
            return {self.model_param: validated}
        return {name: getattr(validated, name) for name in type(validated).model_fields}


def call_target(obj: Callable[..., Any]) -> Callable[..., Any]:
    """The callable whose signature defines the handler: a function, or a class's __call__."""
    if inspect.isclass(obj):
        if not callable(getattr(obj, "__call__", None)) or obj.__call__ is object.__call__:  # noqa: B004 - instances must be callable, not the class
            raise SpecError(f"class {obj.__name__!r} needs a __call__ method to be a function")
        method: Callable[..., Any] = obj.__call__
        return method
    return obj


def inspect_handler(obj: Any, *, batched: bool) -> Signature:
    """Work out the handler kind and build its input model and output adapter."""
    target = call_target(obj)
    qualname = getattr(obj, "__qualname__", repr(obj))
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception as exc:  # NameError for an unresolvable forward reference, and friends
        raise SpecError(f"{qualname}: cannot resolve type hints: {exc}") from None
    params = [p for p in inspect.signature(target).parameters.values() if p.name != "self" or not inspect.isclass(obj)]
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            raise SpecError(f"{qualname}: parameter {p.name!r} must be a named parameter (no *args, **kwargs or /)")
    is_gen = inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target)
    is_async = inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)
    returns = hints.get("return", inspect.Signature.empty)

    if any(_is_cloudevent(hints.get(p.name)) for p in params):
        if len(params) != 1:
            raise SpecError(f"{qualname}: a CloudEvent handler takes exactly one parameter, the event")
        if batched or is_gen:
            raise SpecError(f"{qualname}: a CloudEvent handler cannot be batched or streaming")
        return Signature(EVENT, is_async, None, None, None)

    if any(_is_request(hints.get(p.name)) for p in params):
        if len(params) != 1:
            raise SpecError(f"{qualname}: a lepton.Request handler takes exactly one parameter, the request")
        if batched or is_gen:
            raise SpecError(f"{qualname}: a lepton.Request handler cannot be batched or yield; return a StreamingResponse to stream")
        return Signature(REQUEST, is_async, None, None, None)

    kind = BATCH if batched else STREAM if is_gen else JSON
    if batched and is_gen:
        raise SpecError(f"{qualname}: a batch handler must return a list, not yield")
    fields: dict[str, Any] = {}
    for p in params:
        annotation = hints.get(p.name, Any)
        if batched:
            if typing.get_origin(annotation) is not list:
                raise SpecError(
                    f"{qualname}: with batch=, declare every parameter as a list (e.g. '{p.name}: list[int]'); {p.name!r} is {annotation!r}"
                )
            (annotation,) = typing.get_args(annotation) or (Any,)
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (annotation, default)

    model_param = None
    if len(params) == 1 and not batched and _is_model(fields[params[0].name][0]):
        model_param = params[0].name
        input_model = fields[model_param][0]
    else:
        model_name = "".join(part.title() for part in qualname.replace(".", "_").split("_")) + "Input"
        input_model = create_model(model_name, **fields)

    output_adapter = None
    if returns is not inspect.Signature.empty and returns is not None:
        if batched:
            (returns,) = typing.get_args(returns) or (Any,)
        elif is_gen:
            yielded = typing.get_args(returns)
            returns = yielded[0] if yielded else Any
        try:
            output_adapter = TypeAdapter(returns)
        except Exception as exc:
            raise SpecError(f"{qualname}: unsupported return annotation {returns!r}: {exc}") from None
    return Signature(kind, is_async, input_model, model_param, output_adapter)


# An ASGI app is called with ASGI's own protocol: the runtime passes requests through.
ASGI_SIGNATURE = Signature(ASGI, True, None, None, None)
