"""How a value becomes a pickle plus its protocol-5 out-of-band buffers, and back.

Plain ``pickle`` is tried first; cloudpickle is used when plain pickle fails (lambdas, closures) or when
the pickle refers to ``__main__`` (a function or class defined in the sending VM's main script or
namespace, which the other VM does not have): cloudpickle pickles those by value. Contiguous
``memoryview`` objects, which pickle refuses, travel as out-of-band buffers and are rebuilt with their
format and shape.
"""

from __future__ import annotations

import io
import pickle
import sys
import types
import weakref
from typing import Any

PROTOCOL = 5


class _Pickler(pickle.Pickler):
    """The standard pickler, plus contiguous ``memoryview`` objects as out-of-band buffers."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is memoryview:
            return _reduce_memoryview(obj)
        return NotImplemented


def _reduce_memoryview(view: memoryview) -> Any:
    fmt: str = view.format
    shape: tuple[int, ...] | None = view.shape
    if not view.c_contiguous:
        view = memoryview(view.tobytes())  # C order, the order cast() rebuilds (Fortran views too)
    if shape and 0 in shape:
        if len(shape) > 1:
            raise pickle.PicklingError(
                f"an empty memoryview of shape {shape} cannot cross VMs (cast() cannot rebuild a shape "
                "with a zero in it): send a numpy array instead"
            )
        shape = None  # one dimension, empty: rebuilt by cast() without a shape
    try:
        probe: Any = view.cast("B")
        probe.cast(fmt) if shape is None else probe.cast(fmt, shape)  # as the receiver will, before sending
    except (TypeError, ValueError):
        raise pickle.PicklingError(
            f"a memoryview of format {fmt!r} cannot cross VMs (only native single-character formats "
            "such as 'B', 'i' or 'd' can be rebuilt): send the numpy array, or bytes, instead"
        ) from None
    return _rebuild_memoryview, (pickle.PickleBuffer(view), fmt, shape)


def _rebuild_memoryview(buffer: Any, fmt: str, shape: tuple[int, ...] | None) -> memoryview:
    raw: Any = memoryview(buffer).cast("B")
    rebuilt: memoryview = raw.cast(fmt) if shape is None else raw.cast(fmt, shape)
    return rebuilt


def _cloudpickler() -> type[pickle.Pickler]:
    import cloudpickle  # imported on first need: it costs ~30 ms, and most values never need it

    code_reduce = getattr(cloudpickle.cloudpickle, "_code_reduce", None)

    class _CloudPickler(cloudpickle.Pickler):  # type: ignore[misc]
        def reducer_override(self, obj: Any) -> Any:
            if type(obj) is memoryview:
                return _reduce_memoryview(obj)
            if type(obj) is types.CodeType and code_reduce is not None:
                return _keep_filename(obj, code_reduce(obj))
            return super().reducer_override(obj)

    return _CloudPickler


def _keep_filename(code: types.CodeType, reduced: Any) -> Any:
    """cloudpickle's reduction of ``code`` with the code's own file name put back.

    cloudpickle (3.x) names every function it pickles by value ``<dynamic-code>`` so that its pickles
    are deterministic; a job's traceback would then show neither the user's file nor its source line.
    With the real name, the VM's traceback reads as a local one would (the VM sees the same files).
    """
    constructor, args = reduced
    args = tuple(
        code.co_filename if isinstance(arg, str) and arg == "<dynamic-code>" else arg for arg in args
    )
    return constructor, args


_cloud_pickler_class: type[pickle.Pickler] | None = None

# Functions of a module by id: a weak reference to the function (an unloaded module's functions and
# globals must not live on here), its by-reference pickle and the module and name it names. Bounded:
# full, it starts again (a game submits a handful of distinct functions, not hundreds).
_REFERENCES_LIMIT = 256
_references: dict[int, tuple[weakref.ref[types.FunctionType], bytes, str, str]] = {}


def function_reference(target: object) -> bytes | None:
    """The pickle of ``target`` if it is a function of an imported module (pickled by module and name),
    made once per function; None for anything else, which is pickled with the arguments as ever.

    A job's function is usually the same object every time: this saves pickle's module import and
    attribute walk on each submit. The reference is used only while the module still holds this very
    function under its name, as pickle checks: a function replaced there (a reload, a rebinding) is not
    found any more, so it goes by value through cloudpickle, as before.
    """
    if type(target) is not types.FunctionType:
        return None
    function = target
    module, name = function.__module__, function.__qualname__
    cached = _references.get(id(function))
    if (
        cached is not None
        and cached[0]() is function  # (an id is reused once its function is gone)
        and cached[2] == module
        and cached[3] == name
        and getattr(sys.modules.get(module), name, None) is function
    ):
        return cached[1]  # (the usual case: the same function, where it was)
    if module == "__main__" or not isinstance(module, str) or "." in name:
        return None  # __main__ goes by value; a method's dotted name is not worth the walk here
    if getattr(sys.modules.get(module), name, None) is not function:
        return None
    try:
        data = pickle.dumps(function, PROTOCOL)
    except Exception:
        return None
    if len(_references) >= _REFERENCES_LIMIT:
        _references.clear()  # (one atomic call: another thread may be reading)
    _references[id(function)] = (weakref.ref(function), data, module, name)
    return data


def dumps(value: Any) -> bytes:
    """Pickle ``value`` as ``encode`` would, buffers in band; raise what pickling raises."""
    data, _buffers = dumps_with_buffers(value)
    return data


def dumps_with_buffers(value: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    global _cloud_pickler_class
    buffers: list[pickle.PickleBuffer] = []
    try:
        # The C pickler's one-call form is the fastest path for the small values most jobs exchange.
        data: bytes | None = pickle.dumps(value, PROTOCOL, buffer_callback=buffers.append)
    except (pickle.PicklingError, TypeError, AttributeError):
        data = _dumps_with_memoryviews(value, buffers)
    # A reference to __main__ would not resolve in the other VM: pickle those objects by value.
    # (find, not ``in``: bytes.__contains__ first tries the needle as an int, raising and clearing an error)
    if data is not None and data.find(b"__main__") < 0:
        return data, buffers
    if _cloud_pickler_class is None:
        _cloud_pickler_class = _cloudpickler()
    buffers = []
    out = io.BytesIO()
    _cloud_pickler_class(out, PROTOCOL, buffer_callback=buffers.append).dump(value)
    return out.getvalue(), buffers


def _dumps_with_memoryviews(value: Any, buffers: list[pickle.PickleBuffer]) -> bytes | None:
    """Pickle with ``_Pickler`` (memoryview support); None if the value needs cloudpickle."""
    buffers.clear()
    out = io.BytesIO()
    try:
        _Pickler(out, PROTOCOL, buffer_callback=buffers.append).dump(value)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None
    return out.getvalue()
