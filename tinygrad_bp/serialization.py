"""Save and load state dicts as ``.npz`` or ``.safetensors`` files, without pickle.

The default file is an uncompressed ``.npz``: every array is one member (``arr_0``,
``arr_1``, ...) and the nesting (dicts, lists, Python scalars, strings) is a JSON
document kept as UTF-8 bytes in the member ``__tinygrad_bp_structure__``. Loading uses
``np.load(..., allow_pickle=False)`` and ``json``, so a file can hold data but never
code.

A path ending in ``.safetensors`` selects the format PyTorch and Hugging Face tools
exchange weights in (the ``safetensors`` extra). Its tensors are named by their dotted
key path (``0.weight``, ``model.2.bias``, ``optimizer.state.0.exp_avg``) and the same
JSON document travels as the header metadata entry ``__tinygrad_bp_structure__``, so a
nested checkpoint comes back exactly as from ``.npz`` while other tools see ordinary
named tensors. The format has no checksum (a zip member has a CRC-32), so the header
also carries one CRC-32 per tensor (``__tinygrad_bp_crc32__``), checked on loading.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
import zlib
from collections.abc import Callable
from types import ModuleType
from typing import IO, Any

import numpy as np

import tinygrad_bp as tg

__all__ = ["load", "save"]

_STRUCTURE = "__tinygrad_bp_structure__"
_CHECKSUMS = "__tinygrad_bp_crc32__"
_FORMAT = "tinygrad_bp"
_VERSION = 1
_SAFETENSORS_SUFFIX = ".safetensors"
# What safetensors >= 0.4 and NumPy can both hold (bfloat16 and float8 have no NumPy
# dtype; complex64 arrived only in later safetensors releases).
_SAFETENSORS_DTYPES = tuple(
    np.dtype(name)
    for name in (
        "bool",
        "int8",
        "uint8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "float16",
        "float32",
        "float64",
    )
)
_MISSING_EXTRA = (
    "reading or writing .safetensors files needs the safetensors package, an "
    "optional extra: pip install 'tinygrad_bp[safetensors]'"
)

# Stores one array (already checked for pickle) and returns the name the structure
# document refers to it by; its arguments are the array, its key path and its "where".
_Store = Callable[[np.ndarray, tuple, str], str]


def save(obj: Any, path: str | os.PathLike) -> None:
    """Write a (nested) state dict to ``path`` as ``.npz``, or ``.safetensors``, atomically.

    ``obj`` may nest dicts (str or int keys), lists and tuples (tuples come back as
    lists) of NumPy arrays, Tensors (stored as their array), NumPy scalars (stored
    as Python scalars), ints, floats, bools, ``None`` and strings. The path is used
    exactly as given (no ``.npz`` is appended). The file is written to a temporary
    file in the same directory and renamed onto ``path``, so a failure leaves any
    existing file untouched.

    A path ending in ``.safetensors`` writes that format instead (needs the
    ``safetensors`` extra). It holds bool, int8-64, uint8-64 and float16-64 arrays,
    stored in C order and little-endian; an array of any other dtype raises
    ``TypeError`` naming its key, before anything is written.

    >>> import os, tempfile, numpy as np, tinygrad_bp as tg
    >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
    >>> tg.save({"w": np.eye(2), "opt": {"state": {0: {"step": 3}}}}, path)
    >>> sd = tg.load(path)
    >>> sd["w"].tolist(), sd["opt"]
    ([[1.0, 0.0], [0.0, 1.0]], {'state': {0: {'step': 3}}})
    """
    path = os.fspath(path)
    if _is_safetensors(path):
        blob = _safetensors_bytes(obj)
        _write_atomically(path, lambda f: f.write(blob))
        return

    arrays: list[np.ndarray] = []

    def store(array: np.ndarray, keys: tuple, where: str) -> str:
        arrays.append(array)
        return f"arr_{len(arrays) - 1}"

    structure = np.frombuffer(_structure_json(obj, store).encode("utf-8"), np.uint8)
    # Positional arrays get numpy's names arr_0, arr_1, ...; user keys never become
    # keyword arguments, so they cannot clash with savez's own.
    _write_atomically(path, lambda f: np.savez(f, *arrays, **{_STRUCTURE: structure}))


def load(path: str | os.PathLike) -> Any:
    """Read a file written by :func:`save` (or any pickle-free ``.npz``/``.safetensors``).

    Arrays come back as writable NumPy arrays, int dict keys as ints. A plain
    ``.npz``, or a ``.safetensors`` file written by another tool (such as
    ``safetensors.torch.save_file``), loads as a flat ``{name: array}`` dict. A
    truncated, corrupt or foreign file raises ``ValueError`` naming the path; loading
    never runs code from the file.

    >>> import os, tempfile, numpy as np, tinygrad_bp as tg
    >>> path = os.path.join(tempfile.mkdtemp(), "plain.npz")
    >>> np.savez(path, w=np.arange(3))
    >>> tg.load(path)
    {'w': array([0, 1, 2])}
    """
    path = os.fspath(path)
    if _is_safetensors(path):
        return _load_safetensors(path)
    # Opening first lets a missing or unreadable path raise its own OSError; after
    # that, any failure comes from parsing the bytes, so the file is not ours.
    with open(path, "rb") as f:
        try:
            loaded = np.load(f, allow_pickle=False)
            if isinstance(loaded, np.ndarray):
                raise ValueError("it holds a single .npy array, not an .npz archive")
            with loaded as npz:
                members = {name: _read_member(npz, name) for name in npz.files}
        except _Refused as e:
            raise ValueError(f"{path!r}: {e}") from e
        except Exception as e:  # zipfile, zlib, numpy and EOF errors alike
            raise _invalid(path, f"{type(e).__name__}: {e}") from e

    if _STRUCTURE not in members:
        return members
    try:
        text = members.pop(_STRUCTURE).tobytes().decode("utf-8")
    except ValueError as e:
        raise _invalid(path, f"unreadable structure member: {e}") from e
    return _decode_document(text, members, path)


class _Refused(Exception):
    """A readable file holds what we refuse (an object array, a dtype NumPy lacks).

    :func:`load` turns it into a ValueError naming the path.
    """


def _invalid(path: str, why: str, kind: str = "tinygrad_bp") -> ValueError:
    return ValueError(f"{path!r} is not a valid {kind} file ({why})")


def _write_atomically(path: str, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write`` on a fresh temporary file next to ``path``, then rename it."""
    # open(..., "xb") rather than mkstemp: the file gets the usual umask-based
    # permissions instead of mkstemp's 0600, and "x" refuses to clobber anything.
    tmp = os.path.join(
        os.path.dirname(os.path.abspath(path)),
        f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp",
    )
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _structure_json(obj: Any, store: _Store) -> str:
    """The JSON document describing ``obj``; ``store`` receives its arrays."""
    root = _encode(obj, "obj", (), store, set())
    return json.dumps({"format": _FORMAT, "version": _VERSION, "root": root})


def _decode_document(text: str, arrays: dict[str, np.ndarray], path: str) -> Any:
    try:
        document = json.loads(text)
    except ValueError as e:
        raise _invalid(path, f"unreadable structure member: {e}") from e
    if (
        not isinstance(document, dict)
        or document.get("format") != _FORMAT
        or document.get("version") != _VERSION
        or "root" not in document
    ):
        raise _invalid(path, "unknown structure format or version")
    return _decode(document["root"], arrays, path)


def _read_member(npz: Any, name: str) -> np.ndarray:
    try:
        value = npz[name]
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise _Refused(
                f"member {name!r} holds an object array, which needs pickle to "
                "load; refused (files are loaded with allow_pickle=False)"
            ) from e
        raise
    if not isinstance(value, np.ndarray):
        raise ValueError(f"member {name!r} is not a .npy array")
    # Arrays read from an in-memory buffer may be read-only views of it.
    return np.require(value, requirements="W")


# ---------------------------------------------------------------- safetensors


def _is_safetensors(path: str) -> bool:
    return path.lower().endswith(_SAFETENSORS_SUFFIX)


def _safetensors() -> ModuleType:
    """The safetensors package (with its numpy module), or an error naming the extra."""
    try:
        import safetensors.numpy
    except ImportError as e:
        raise ModuleNotFoundError(_MISSING_EXTRA, name="safetensors") from e
    return safetensors


def _safetensors_bytes(obj: Any) -> bytes:
    """The whole ``.safetensors`` file for ``obj``; raises before anything is written."""
    safetensors = _safetensors()
    tensors: dict[str, np.ndarray] = {}

    def store(array: np.ndarray, keys: tuple, where: str) -> str:
        if array.dtype.newbyteorder("=") not in _SAFETENSORS_DTYPES:
            supported = ", ".join(dtype.name for dtype in _SAFETENSORS_DTYPES)
            raise TypeError(
                f"cannot save {where} to a .safetensors file: dtype {array.dtype} "
                f"(shape {array.shape}) is not supported; the format holds {supported} "
                "(save to .npz for other dtypes)"
            )
        base = ".".join(str(key) for key in keys) if keys else "tensor"
        # "__metadata__" is the header's own entry; a clash between the dotted
        # names of {"a.b": x} and {"a": {"b": y}} gets a suffix. The structure
        # document records whichever name was used.
        name, copies = base, 0
        while name in tensors or name == "__metadata__":
            copies += 1
            name = f"{base}#{copies}"
        # safetensors copies raw memory: transposed views and big-endian arrays
        # must first become C-ordered little-endian buffers holding their values.
        tensors[name] = np.asarray(
            array, dtype=array.dtype.newbyteorder("<"), order="C"
        )
        return name

    structure = _structure_json(obj, store)
    checksums = {name: _crc32(tensor) for name, tensor in tensors.items()}
    metadata = {_STRUCTURE: structure, _CHECKSUMS: json.dumps(checksums)}
    try:
        return safetensors.numpy.save(tensors, metadata=metadata)
    except safetensors.SafetensorError as e:  # not expected after the checks above
        raise ValueError(f"safetensors could not serialize the state dict: {e}") from e


def _load_safetensors(path: str) -> Any:
    safetensors = _safetensors()
    # As for .npz: a missing or unreadable path raises its own OSError.
    with open(path, "rb"):
        pass
    try:
        with safetensors.safe_open(path, framework="np") as f:
            metadata = f.metadata() or {}
            names = f.keys()  # a safe_open handle is not iterable
            tensors = {name: _read_tensor(f, name) for name in names}
        checksums = json.loads(metadata.get(_CHECKSUMS, "{}"))
        if not isinstance(checksums, dict):
            raise ValueError("the checksum entry is not a JSON object")
    except _Refused as e:
        raise ValueError(f"{path!r}: {e}") from e
    except Exception as e:  # SafetensorError on a truncated or corrupt header
        raise _invalid(path, f"{type(e).__name__}: {e}", "safetensors") from e
    for name, checksum in checksums.items():
        if name not in tensors or _crc32(tensors[name]) != checksum:
            raise _invalid(
                path, f"tensor {name!r} fails its CRC-32 check", "safetensors"
            )
    if _STRUCTURE not in metadata:
        return tensors
    return _decode_document(metadata[_STRUCTURE], tensors, path)


def _read_tensor(f: Any, name: str) -> np.ndarray:
    try:
        tensor = f.get_tensor(name)
    except TypeError as e:  # bfloat16 and float8 tensors, which NumPy cannot hold
        raise _Refused(
            f"tensor {name!r} has a dtype NumPy has no type for ({e}); convert it "
            "(to float32, say) before saving"
        ) from e
    if tensor.dtype.newbyteorder("=") not in _SAFETENSORS_DTYPES:
        # NumPy holds bfloat16 once ml_dtypes is imported (onnx and jax import it);
        # the library computes in none of those dtypes, so refuse it the same way
        raise _Refused(
            f"tensor {name!r} has dtype {tensor.dtype}, which the library does not "
            "compute in; convert it (to float32, say) before saving"
        )
    return np.require(tensor, requirements="W")


def _crc32(array: np.ndarray) -> int:
    """CRC-32 of the array's bytes as a .safetensors file stores them."""
    stored = np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")
    return zlib.crc32(stored.reshape(-1).view(np.uint8))


# ---------------------------------------------------------------- structure


def _encode(obj: Any, where: str, keys: tuple, store: _Store, active: set[int]) -> Any:
    """Turn ``obj`` into JSON-ready data, handing its arrays to ``store``."""
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
        return {"array": store(array, keys, where)}
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
            inner = _encode(value, f"{where}[{key!r}]", (*keys, key), store, active)
            pairs.append([key, inner])
        encoded: Any = {"dict": pairs}
    else:
        encoded = [
            _encode(item, f"{where}[{i}]", (*keys, i), store, active)
            for i, item in enumerate(obj)
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
