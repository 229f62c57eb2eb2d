"""`@lepton.function` and `@lepton.asgi`: record a handler (or an ASGI app) and its options as a
`Function`.

The decorator only records. Nothing is registered globally: the loader finds `Function`
objects by scanning the user's module, so importing a module twice (or two modules in one
test) never leaks state.
"""

from __future__ import annotations

import difflib
import inspect
import os
import threading
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

from lepton.handlers import ASGI_SIGNATURE, Signature, inspect_handler
from lepton.spec import Batch, FunctionSpec, HandlerInfo, Retries
from lepton.triggers import BucketTrigger, CronTrigger, EventTrigger

_TRIGGER_TYPES = (EventTrigger, CronTrigger, BucketTrigger)
T = TypeVar("T")


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

    def __init__(
        self,
        obj: Any,
        spec: FunctionSpec | None,
        signature: Signature | None,
        *,
        name: str = "",
        build: Callable[[], tuple[FunctionSpec, Signature]] | None = None,
    ) -> None:
        """`build`, given instead of `spec` and `signature`, makes them when first needed."""
        self.obj = obj
        self._spec, self._signature, self._build = spec, signature, build
        self._name = spec.name if spec is not None else name
        self._instance: Any = None
        self._lock = threading.Lock()
        self.__doc__ = obj.__doc__
        self.__name__ = getattr(obj, "__name__", self._name)
        self.__wrapped__ = obj

    @property
    def name(self) -> str:
        """The name the platform knows it by: it is served at `/fn/NAME`, and `calls=`, triggers
        and the CLI refer to it so."""
        return self._name

    @property
    def spec(self) -> FunctionSpec:
        """The validated options that `lepton deploy` packages. A replica serving another
        function of the same file makes it only when asked, so many functions in a file start
        as fast as one."""
        return self._made()[0]

    @property
    def signature(self) -> Signature:
        """How the runtime calls the handler (its kind, input model and output adapter),
        read from its type hints."""
        return self._made()[1]

    def _made(self) -> tuple[FunctionSpec, Signature]:
        if self._spec is None or self._signature is None:
            assert self._build is not None, "a Function is given a spec and signature, or a build to make them"
            self._spec, self._signature = self._build()
        return self._spec, self._signature

    @property
    def is_class(self) -> bool:
        """Whether the handler is a class: it is instantiated and set up once per process, then
        its instance's `__call__` serves every request."""
        return inspect.isclass(self.obj)

    def __repr__(self) -> str:
        return f"<lepton.Function {self.name!r} ({self.signature.kind})>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the handler here, in this process, as plain Python (tests, notebooks). A class is
        instantiated and its `setup()` run on the first call, as in a replica."""
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

                        asyncio.run(_awaited(result))
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

    def spawn(self, *, client: Any = None, **kwargs: Any) -> Any:
        """Start the deployed function as an async job and return its `lepton.Job` at once,
        as soon as the platform has stored it; collect the result later with `job.result()`."""
        from lepton.client import Client

        if client is not None:
            return client.spawn(self.name, kwargs)
        with Client() as own:  # the job opens a client like it when it is next asked
            return own.spawn(self.name, kwargs)

    def map(
        self, inputs: Any, *, concurrency: int | None = None, ordered: bool = True, return_exceptions: bool = False, client: Any = None
    ) -> Any:
        """Call the deployed function once per input, many at a time, yielding the results.

        An input is a dict of parameters, a tuple of them in order, or the value of the only
        parameter. Results come in input order (`ordered=False`: as they finish); inputs are
        read only as results are taken, so a generator of millions streams. A failed call
        raises its `InvocationError` at its place, or with `return_exceptions=True` is
        yielded instead. `concurrency` defaults to what the replicas take (at most 64).

        Example:
            for square in squares.map(range(100_000), concurrency=32):
                total += square
        """
        from lepton.client import Client
        from lepton.jobs import default_concurrency, fan_out, function_payloads

        return fan_out(
            client,
            Client.function_path(self.name),
            function_payloads(self, inputs),
            concurrency=concurrency or default_concurrency(self.spec),
            ordered=ordered,
            return_exceptions=return_exceptions,
        )


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
    max_queue: int | None = None,
    buckets: Sequence[str] = (),
    env: dict[str, str] | None = None,
    secrets: Sequence[str] = (),
    calls: Sequence[str] = (),
    requirements: Sequence[str] = (),
    public: bool = False,
    triggers: Sequence[Any] = (),
    batch: Batch | None = None,
    methods: Sequence[str] = ("POST",),
    retries: int | Retries = 0,
    **misspelt: Any,
) -> Any:
    """Make a handler a Lepton function: `lepton run` serves it here, `lepton deploy` puts it on
    the platform at `/fn/NAME`, and calling it still runs it in this process.

    Works bare (`@lepton.function`) or with options (`@lepton.function(max_scale=4)`). The
    options are checked when the function is decorated: a bad value or a misspelt option is a
    `SpecError` that names it.

    Options:
        name: its name on the platform (default: the handler's, in lower case, `_` as `-`).
        cpu, memory, gpu: what each replica gets, e.g. "500m", "2Gi", 1.
        min_scale, max_scale: bounds of the replica count; with 0 it scales to zero when idle.
        concurrency: requests a replica takes at once (0: no limit).
        target: in-flight requests per replica the autoscaler aims for (default: 70% of
            `concurrency`; without one, 10, or 100 with `batch`).
        scale_down_after: seconds without traffic before the last replica goes.
        timeout: seconds one request (or one attempt of an async job) may take.
        max_queue: requests that may wait for a free replica before more get 503 with
            `Retry-After` (default: the platform's limit).
        buckets, secrets, env, requirements: what the handler needs: the buckets it may use,
            secrets it reads as environment variables, fixed variables, pip requirements.
        calls: the private functions it may invoke with its own token.
        public: callable without a token.
        triggers: what else makes it run: `lepton.on_event`, `on_bucket`, `on_cron`.
        batch: `lepton.Batch(...)` merges concurrent calls into one handler call.
        methods: the HTTP methods it answers; GET reads the parameters from the query string.
        retries: how often a failed async job is tried again: a number, or `lepton.Retries`.

    Example:
        @lepton.function(memory="2Gi", max_scale=4, secrets=["HF_TOKEN"])
        def classify(text: str) -> str:
            ...
    """
    if misspelt:
        raise _unknown_option("function", misspelt, _OPTIONS)
    options = {key: value for key, value in locals().items() if key not in ("obj", "misspelt")}  # every option, as given
    return _decorator(obj, options, asgi=False)


def asgi(obj: Any = None, **options: Any) -> Any:
    """Deploy a whole ASGI app (FastAPI, Starlette) as a function, served under `/fn/NAME/`.

    Takes the options of `lepton.function` except `batch` and `methods` (the app routes its
    own requests). Decorate a function that takes no arguments and returns the app, so the
    app is built in the replica, where heavy setup belongs; or pass an app object:

        @lepton.asgi(name="web", max_scale=4)
        def web() -> FastAPI:
            app = FastAPI()
            ...
            return app

        api = lepton.asgi(FastAPI(), name="api")

    The app's lifespan runs before the replica takes requests. Calling the function here
    returns the app.
    """
    for refused, why in (("batch", "batching needs a handler"), ("methods", "the app routes its own methods")):
        if refused in options:
            raise _spec_error(str(options.get("name")), f"@lepton.asgi takes no {refused}= ({why})")
    if unknown := {key: value for key, value in options.items() if key not in _OPTIONS}:
        raise _unknown_option("asgi", unknown, [o for o in _OPTIONS if o not in ("batch", "methods")])
    return _decorator(obj, {**_OPTIONS, **options}, asgi=True)


# The options and defaults of `function`, which `asgi` shares.
_OPTIONS = {p.name: p.default for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY}


def _decorator(obj: Any, options: dict[str, Any], *, asgi: bool) -> Any:
    """`decorate` applied to `obj`, or waiting for its target when options came first."""

    def decorate(target_obj: Any) -> Function:
        return _record(target_obj, options, asgi=asgi)

    if obj is not None:
        return decorate(obj)
    return decorate


def _record(target_obj: Any, options: dict[str, Any], *, asgi: bool) -> Function:
    """Validate the options for `target_obj` and build its `Function`."""
    decorator = "@lepton.asgi" if asgi else "@lepton.function"
    name, batch, retries = options["name"], options["batch"], options["retries"]
    if isinstance(target_obj, Function):
        raise _spec_error(target_obj.name, f"is decorated twice; keep one {decorator}")
    if not callable(target_obj):
        raise _spec_error(str(name), f"{decorator} needs a function or class, got {target_obj!r}")
    python_name = getattr(target_obj, "__name__", None)
    if name is not None:
        fn_name: str = name
    elif python_name is not None:
        fn_name = python_name.replace("_", "-").lower()
    else:
        raise _spec_error("?", f"{decorator} needs name= for {target_obj!r}, which has no __name__ to derive one from")
    for trig in options["triggers"]:
        if not isinstance(trig, _TRIGGER_TYPES):
            raise _spec_error(
                fn_name,
                f"unknown trigger {trig!r}; build triggers with lepton.on_event, lepton.on_cron or lepton.on_bucket",
            )
    if batch is not None and not isinstance(batch, Batch):
        raise _spec_error(fn_name, f"batch= takes lepton.Batch(...), got {batch!r}")
    if isinstance(retries, bool) or not isinstance(retries, (int, Retries)):
        raise _spec_error(fn_name, f"retries= takes a number of retries or lepton.Retries(...), got {retries!r}")
    if asgi:
        return AsgiFunction(target_obj, _spec(target_obj, fn_name, options, ASGI_SIGNATURE), factory=_is_app_factory(target_obj, fn_name))

    def build() -> tuple[FunctionSpec, Signature]:
        signature = inspect_handler(target_obj, batched=batch is not None)
        return _spec(target_obj, fn_name, options, signature), signature

    if os.environ.get("LEPTON_FUNCTION", fn_name) != fn_name:
        # A replica serving another function of this file: its schemas (a few ms of pydantic
        # per function) are made only if something asks, so a file of a thousand functions
        # starts each replica as fast as a file of one. It was all checked when packaged.
        return Function(target_obj, None, None, name=fn_name, build=build)
    spec, signature = build()
    return Function(target_obj, spec, signature)


def _spec(target_obj: Any, fn_name: str, options: dict[str, Any], signature: Signature) -> FunctionSpec:
    """The validated spec of a handler with `signature` and the decorator's `options`."""
    batch, retries, methods = options["batch"], options["retries"], options["methods"]
    python_name = getattr(target_obj, "__name__", None)
    handler = HandlerInfo(
        kind=signature.kind,
        attr=python_name or fn_name,
        is_class=inspect.isclass(target_obj),
        is_async=signature.is_async,
        input_schema=signature.input_schema(),
        output_schema=signature.output_schema(),
    )
    return FunctionSpec.build(
        name=fn_name,
        cpu=str(options["cpu"]),
        memory=options["memory"],
        gpu=options["gpu"],
        min_scale=options["min_scale"],
        max_scale=options["max_scale"],
        concurrency=options["concurrency"],
        target=options["target"],
        scale_down_after=options["scale_down_after"],
        timeout=options["timeout"],
        max_queue=options["max_queue"],
        buckets=tuple(options["buckets"]),
        env=dict(options["env"] or {}),
        secrets=tuple(options["secrets"]),
        calls=tuple(options["calls"]),
        requirements=tuple(options["requirements"]),
        public=options["public"],
        triggers=tuple(options["triggers"]),
        batch=batch,
        handler=handler,
        methods=[methods] if isinstance(methods, str) else methods,
        retries={"max_retries": retries} if isinstance(retries, int) else retries,
    )


def _is_app_factory(obj: Any, name: str) -> bool:
    """Whether `obj` builds the app (it takes no arguments) rather than being it (ASGI's
    `(scope, receive, send)`)."""
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):  # a callable without a signature Python can read: the app itself
        return False
    if any(p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return False
    if inspect.iscoroutinefunction(obj):
        raise _spec_error(name, "the function under @lepton.asgi must return the app, not be async (it runs in a thread)")
    return True


class AsgiFunction(Function):
    """An ASGI app deployed whole (`@lepton.asgi`); calling it returns the app, built once."""

    def __init__(self, obj: Any, spec: FunctionSpec, *, factory: bool) -> None:
        super().__init__(obj, spec, ASGI_SIGNATURE)
        self.factory = factory

    def __call__(self) -> Any:
        with self._lock:
            if self._instance is None:
                self._instance = self.obj() if self.factory else self.obj
        return self._instance


def _unknown_option(decorator: str, given: dict[str, Any], options: Collection[str]) -> Exception:
    """A SpecError for an option the decorator does not have, with the nearest real one."""
    from lepton.errors import SpecError

    key = sorted(given)[0]
    near = difflib.get_close_matches(key, options, n=1)
    hint = f"did you mean {near[0]}=?" if near else f"the options are {', '.join(options)}"
    return SpecError(f"@lepton.{decorator} has no option {key}=; {hint}")


def _spec_error(name: str, message: str) -> Exception:
    from lepton.errors import SpecError

    return SpecError(f"function {name!r}: {message}")


async def _awaited(awaitable: Awaitable[T]) -> T:
    """`asyncio.run` takes a coroutine; a class's `setup()` may return any awaitable."""
    return await awaitable


def find_functions(namespace: dict[str, Any]) -> dict[str, Function]:
    """The `Function`s defined in a module namespace, by function name."""
    found: dict[str, Function] = {}
    for value in namespace.values():
        if isinstance(value, Function):
            if value.name in found and found[value.name] is not value:
                raise _spec_error(value.name, "is defined twice; use 'name=' to give each function a unique name")
            found[value.name] = value
    return found
