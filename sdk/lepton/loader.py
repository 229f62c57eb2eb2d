"""Import user code from `FILE[:NAME]` and find its functions.

Only errors we own are translated: a syntax error or an exception while importing the user's
file becomes one `LoadError` line naming the file and line where it happened.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

from lepton.errors import LoadError, SpecError
from lepton.functions import Function, find_functions


def add_platform_packages() -> None:
    """In a replica: the packages the platform installed for its revision (LEPTON_PACKAGES),
    after the environment's own so those always win."""
    folder = os.environ.get("LEPTON_PACKAGES")
    if folder and folder not in sys.path:
        sys.path.append(folder)


def split_target(target: str) -> tuple[Path, str | None]:
    """'handler.py:classify' -> (Path('handler.py'), 'classify'); Windows drive letters aside."""
    path, sep, name = target.rpartition(":")
    if not sep or not name or "/" in name or "\\" in name:
        return Path(target), None
    return Path(path), name


def import_file(path: Path) -> ModuleType:
    """Import a Python file as a fresh module, its folder first on sys.path for its siblings."""
    path = path.resolve()
    if not path.is_file():
        raise LoadError(f"{path}: no such file")
    if path.suffix != ".py":
        raise LoadError(f"{path}: not a Python file (expected a .py file)")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    module_name = f"_lepton_user_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(module_name, None)
        where = f"{exc.filename}:{exc.lineno}" if exc.filename else str(path)
        raise LoadError(f"{where}: syntax error: {exc.msg}") from None
    except SpecError as exc:
        sys.modules.pop(module_name, None)
        raise LoadError(f"{_user_frame(exc, path)}: {exc}") from None
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise LoadError(f"{_user_frame(exc, path)}: {type(exc).__name__}: {exc}") from exc
    return module


def _user_frame(exc: BaseException, path: Path) -> str:
    """'file:line' of the deepest frame in the user's folder, else of the file itself."""
    frames = traceback.extract_tb(exc.__traceback__)
    folder = str(path.parent)
    for frame in reversed(frames):
        if frame.filename.startswith(folder):
            return f"{frame.filename}:{frame.lineno}"
    return str(path)


def load_functions(target: str) -> dict[str, Function]:
    """Every function in FILE, or just NAME (its function name or Python name)."""
    path, name = split_target(target)
    module = import_file(path)
    found = find_functions(vars(module))
    if not found:
        names = sorted(
            k
            for k, v in vars(module).items()
            if callable(v) and not k.startswith("_") and getattr(v, "__module__", None) == module.__name__
        )
        hint = f" (found: {', '.join(names)})" if names else ""
        raise LoadError(f"{path}: no @lepton.function in this file{hint}")
    if name is None:
        return found
    for fn in found.values():
        if name in (fn.name, fn.__name__):
            return {fn.name: fn}
    raise LoadError(f"{path}: no function {name!r}; found: {', '.join(sorted(found))}")


def load_function(target: str) -> Function:
    """Exactly one function from FILE[:NAME]; asks for NAME when the file has several."""
    found = load_functions(target)
    if len(found) > 1:
        raise LoadError(f"{target}: has {len(found)} functions ({', '.join(sorted(found))}); pick one with FILE:NAME")
    return next(iter(found.values()))
