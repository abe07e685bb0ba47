"""Save and load state dicts as ``.npz`` files that load without pickle.

A file is an uncompressed ``.npz``: every array is one member (``arr_0``, ``arr_1``,
...) and the nesting (dicts, lists, Python scalars, strings) is a JSON document kept
as UTF-8 bytes in the member ``__tinygrad_bp_structure__``. Loading uses
``np.load(..., allow_pickle=False)`` and ``json``, so a file can hold data but never
code.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from typing import Any

import numpy as np

import tinygrad_bp as tg

__all__ = ["load", "save"]

_STRUCTURE = "__tinygrad_bp_structure__"
_FORMAT = "tinygrad_bp"
_VERSION = 1


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write a (nested) state dict to ``path`` as an ``.npz`` file, atomically.

    ``obj`` may nest dicts (str or int keys), lists and tuples (tuples come back as
    lists) of NumPy arrays, Tensors (stored as their array), NumPy scalars (stored
    as Python scalars), ints, floats, bools, ``None`` and strings. The path is used
    exactly as given (no ``.npz`` is appended). The file is written to a temporary
    file in the same directory and renamed onto ``path``, so a failure leaves any
    existing file untouched.

    >>> import os, tempfile, numpy as np, tinygrad_bp as tg
    >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
    >>> tg.save({"w": np.eye(2), "opt": {"state": {0: {"step": 3}}}}, path)
    >>> sd = tg.load(path)
    >>> sd["w"].tolist(), sd["opt"]
    ([[1.0, 0.0], [0.0, 1.0]], {'state': {0: {'step': 3}}})
    """
    path = os.fspath(path)
    arrays: list[np.ndarray] = []
    root = _encode(obj, "obj", arrays, set())
    document = {"format": _FORMAT, "version": _VERSION, "root": root}
    structure = np.frombuffer(json.dumps(document).encode("utf-8"), dtype=np.uint8)

    # open(..., "xb") rather than mkstemp: the file gets the usual umask-based
    # permissions instead of mkstemp's 0600, and "x" refuses to clobber anything.
    tmp = os.path.join(
        os.path.dirname(os.path.abspath(path)),
        f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp",
    )
    try:
        with open(tmp, "xb") as f:
            # Positional arrays get numpy's names arr_0, arr_1, ...; user keys never
            # become keyword arguments, so they cannot clash with savez's own.
            np.savez(f, *arrays, **{_STRUCTURE: structure})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike) -> Any:
    """Read a file written by :func:`save` (or any pickle-free ``.npz``).

    Arrays come back as writable NumPy arrays, int dict keys as ints. A plain
    ``.npz`` without tinygrad_bp's structure member loads as a flat
    ``{name: array}`` dict.

    >>> import os, tempfile, numpy as np, tinygrad_bp as tg
    >>> path = os.path.join(tempfile.mkdtemp(), "plain.npz")
    >>> np.savez(path, w=np.arange(3))
    >>> tg.load(path)
    {'w': array([0, 1, 2])}
    """
    path = os.fspath(path)
    # Opening first lets a missing or unreadable path raise its own OSError; after
    # that, any failure comes from parsing the bytes, so the file is not ours.
    with open(path, "rb") as f:
        try:
            loaded = np.load(f, allow_pickle=False)
            if isinstance(loaded, np.ndarray):
                raise ValueError("it holds a single .npy array, not an .npz archive")
            with loaded as npz:
                members = {name: _read_member(npz, name) for name in npz.files}
        except _PickleRefused as e:
            raise ValueError(f"{path!r}: {e}") from e
        except Exception as e:  # zipfile, zlib, numpy and EOF errors alike
            raise _invalid(path, f"{type(e).__name__}: {e}") from e

    if _STRUCTURE not in members:
        return members
    try:
        document = json.loads(members.pop(_STRUCTURE).tobytes().decode("utf-8"))
    except ValueError as e:
        raise _invalid(path, f"unreadable structure member: {e}") from e
    if (
        not isinstance(document, dict)
        or document.get("format") != _FORMAT
        or document.get("version") != _VERSION
        or "root" not in document
    ):
        raise _invalid(path, "unknown structure format or version")
    return _decode(document["root"], members, path)


class _PickleRefused(Exception):
    """A member needs pickle to load; :func:`load` turns it into a ValueError."""


def _invalid(path: str, why: str) -> ValueError:
    return ValueError(f"{path!r} is not a valid tinygrad_bp file ({why})")


def _read_member(npz: Any, name: str) -> np.ndarray:
    try:
        value = npz[name]
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise _PickleRefused(
                f"member {name!r} holds an object array, which needs pickle to "
                "load; refused (files are loaded with allow_pickle=False)"
            ) from e
        raise
    if not isinstance(value, np.ndarray):
        raise ValueError(f"member {name!r} is not a .npy array")
    # Arrays read from an in-memory buffer may be read-only views of it.
    return np.require(value, requirements="W")


def _encode(obj: Any, where: str, arrays: list[np.ndarray], active: set[int]) -> Any:
    """Turn ``obj`` into JSON-ready data, appending its arrays to ``arrays``."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.bool_, np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, tg.Tensor):
        obj = obj.data
    if isinstance(obj, (np.ndarray, np.generic)):
        array = np.asarray(obj)
        if array.dtype.hasobject:
            raise TypeError(
                f"cannot save {where}: object-dtype arrays need pickle "
                f"(dtype {array.dtype}, shape {array.shape})"
            )
        arrays.append(array)
        return {"array": f"arr_{len(arrays) - 1}"}
    if not isinstance(obj, (dict, list, tuple)):
        raise TypeError(f"cannot save {where}: unsupported type {type(obj).__name__}")
    if id(obj) in active:
        raise ValueError(f"cannot save {where}: it contains itself")
    active.add(id(obj))
    if isinstance(obj, dict):
        pairs = []
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                raise TypeError(
                    f"cannot save {where}: dict key {key!r} has type "
                    f"{type(key).__name__}; only str and int keys are supported"
                )
            pairs.append([key, _encode(value, f"{where}[{key!r}]", arrays, active)])
        encoded: Any = {"dict": pairs}
    else:
        encoded = [
            _encode(item, f"{where}[{i}]", arrays, active) for i, item in enumerate(obj)
        ]
    active.discard(id(obj))
    return encoded


def _decode(node: Any, members: dict[str, np.ndarray], path: str) -> Any:
    """Rebuild the object that :func:`_encode` turned into ``node``."""
    if isinstance(node, list):
        return [_decode(item, members, path) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"array"} and isinstance(node["array"], str):
        name = node["array"]
        if name not in members:
            raise ValueError(
                f"{path!r}: the structure refers to array member {name!r}, "
                "which the file does not contain"
            )
        return members[name]
    if set(node) == {"dict"} and isinstance(node["dict"], list):
        pairs = node["dict"]
        if all(
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], (str, int))
            for pair in pairs
        ):
            return {key: _decode(value, members, path) for key, value in pairs}
    raise _invalid(path, f"unexpected structure node {node!r}")
