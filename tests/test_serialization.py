"""tinygrad_bp.save / load: round trips, atomic writes, pickle-free loading, errors."""

from __future__ import annotations

import json
import math
import os
import pathlib
import pickle

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_bp as tg
from tinygrad_bp import serialization

STRUCTURE = "__tinygrad_bp_structure__"

# ---------------------------------------------------------------- strategies

DTYPES = [
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.int32,
    np.int64,
    np.uint8,
    np.bool_,
    np.complex128,
]

arrays = st.sampled_from(DTYPES).flatmap(
    lambda dtype: hnp.arrays(
        dtype, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
    )
)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
keys = st.text(max_size=8) | st.integers()
structures = st.recursive(
    scalars | arrays,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=12,
)


def expected(obj):
    """What load should give back for obj: tuples become lists, nothing else changes."""
    if isinstance(obj, (list, tuple)):
        return [expected(item) for item in obj]
    if isinstance(obj, dict):
        return {key: expected(value) for key, value in obj.items()}
    return obj


def assert_same(got, want, where="obj"):
    """Deep equality that also checks types (int vs bool vs float, key types, dtypes)."""
    assert type(got) is type(want), f"{where}: {type(got)} != {type(want)}"
    if isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape, where
        np.testing.assert_array_equal(got, want, err_msg=where)
    elif isinstance(want, dict):
        assert [(type(k), k) for k in got] == [(type(k), k) for k in want], where
        for key in want:
            assert_same(got[key], want[key], f"{where}[{key!r}]")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and math.isnan(want):
        assert math.isnan(got), where
    elif isinstance(want, float):
        assert got == want and math.copysign(1, got) == math.copysign(1, want), where
    else:
        assert got == want, where


def leftovers(directory, keep):
    return sorted(set(os.listdir(directory)) - set(keep))


# ---------------------------------------------------------------- round trips


@settings(max_examples=40, deadline=None)
@given(obj=structures)
def test_round_trip_of_random_nested_structures(tmp_path_factory, obj):
    path = tmp_path_factory.mktemp("rt") / "state.npz"
    tg.save(obj, path)
    assert_same(tg.load(path), expected(obj))


@settings(max_examples=25, deadline=None)
@given(state=st.dictionaries(st.text(min_size=1, max_size=10), arrays, max_size=5))
def test_round_trip_of_flat_state_dicts_gives_writable_copies(tmp_path_factory, state):
    path = tmp_path_factory.mktemp("flat") / "model.npz"
    tg.save(state, path)
    loaded = tg.load(path)
    assert_same(loaded, state)
    for name, array in loaded.items():
        assert array.flags.writeable, name
        assert not np.shares_memory(array, state[name]), name


def test_optimizer_state_dict_keeps_int_keys_and_turns_tuples_into_lists(tmp_path):
    state = {
        "state": {0: {"step": 3, "exp_avg": np.ones((2, 3), np.float32)}, 1: {}},
        "param_groups": [
            {"lr": 0.1, "betas": (0.9, 0.999), "params": [0, 1], "nesterov": False}
        ],
        "note": None,
    }
    tg.save(state, tmp_path / "opt.npz")
    loaded = tg.load(tmp_path / "opt.npz")
    assert list(loaded["state"]) == [0, 1]
    assert loaded["state"][0]["step"] == 3
    assert type(loaded["state"][0]["step"]) is int
    assert loaded["param_groups"][0]["betas"] == [0.9, 0.999]
    assert loaded["param_groups"][0]["nesterov"] is False
    assert loaded["note"] is None
    assert_same(loaded["state"][0]["exp_avg"], np.ones((2, 3), np.float32))


def test_tensors_are_saved_as_their_arrays(tmp_path):
    w = tg.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    tg.save({"w": w, "idx": tg.Tensor(np.array([2, 0]))}, tmp_path / "t.npz")
    loaded = tg.load(tmp_path / "t.npz")
    assert_same(loaded["w"], np.arange(6.0).reshape(2, 3))
    assert_same(loaded["idx"], np.array([2, 0]))


def test_numpy_scalars_come_back_as_python_scalars(tmp_path):
    tg.save(
        {"i": np.int64(7), "f": np.float32(0.5), "b": np.bool_(True)}, tmp_path / "s"
    )
    assert_same(tg.load(tmp_path / "s"), {"i": 7, "f": 0.5, "b": True})


def test_file_is_a_pickle_free_npz_with_a_uint8_structure_member(tmp_path):
    path = tmp_path / "m.npz"
    tg.save({"a": np.arange(3), "b": [np.eye(2), 1.5]}, path)
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == [STRUCTURE, "arr_0", "arr_1"]
        assert npz[STRUCTURE].dtype == np.uint8
        document = json.loads(npz[STRUCTURE].tobytes().decode("utf-8"))
        assert document["format"] == "tinygrad_bp"
        assert all(npz[name].dtype != object for name in npz.files)


@pytest.mark.parametrize("name", ["checkpoint", "model.pt", "weights.npz.tmp"])
@pytest.mark.parametrize("as_pathlib", [False, True])
def test_path_is_kept_exactly(tmp_path, name, as_pathlib):
    path = tmp_path / name if as_pathlib else str(tmp_path / name)
    tg.save({"w": np.ones(2)}, path)
    assert os.listdir(tmp_path) == [name]
    assert_same(tg.load(path), {"w": np.ones(2)})


def test_saving_again_replaces_the_file(tmp_path):
    path = tmp_path / "m.npz"
    tg.save({"w": np.zeros(3)}, path)
    tg.save({"v": np.ones(2)}, path)
    assert_same(tg.load(path), {"v": np.ones(2)})
    assert os.listdir(tmp_path) == ["m.npz"]


def test_a_plain_npz_without_structure_loads_as_a_flat_dict(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, w=np.arange(4.0), b=np.zeros((), np.int32))
    assert_same(tg.load(path), {"w": np.arange(4.0), "b": np.zeros((), np.int32)})


# ---------------------------------------------------------------- atomic writes


def _fail_inside_savez(file, *args, **kwargs):
    file.write(b"PK half a file")
    raise OSError("disk full")


def _fail(*args, **kwargs):
    raise OSError("simulated failure")


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("target", "replacement"),
    [
        (np, ("savez", _fail_inside_savez)),
        (os, ("fsync", _fail)),
        (os, ("replace", _fail)),
        (os, ("fsync", _interrupt)),
    ],
    ids=["savez", "fsync", "replace", "interrupt"],
)
def test_a_failed_save_leaves_the_old_file_intact_and_no_temp_file(
    tmp_path, monkeypatch, target, replacement
):
    path = tmp_path / "model.npz"
    tg.save({"w": np.arange(5)}, path)
    before = path.read_bytes()
    monkeypatch.setattr(target, *replacement)
    with pytest.raises((OSError, KeyboardInterrupt)):
        tg.save({"w": np.zeros(100)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert leftovers(tmp_path, ["model.npz"]) == []
    assert_same(tg.load(path), {"w": np.arange(5)})


def test_a_failed_save_creates_nothing_when_there_was_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "replace", _fail)
    with pytest.raises(OSError, match="simulated"):
        tg.save({"w": np.ones(1)}, tmp_path / "new.npz")
    assert os.listdir(tmp_path) == []


def test_saving_into_a_missing_directory_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        tg.save({"w": np.ones(1)}, tmp_path / "no" / "such" / "dir.npz")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- save errors


@pytest.mark.parametrize(
    ("obj", "where", "type_name"),
    [
        ({"a": {"b": [1, {1, 2}]}}, r"obj\['a'\]\['b'\]\[1\]", "set"),
        ({"opt": {0: object()}}, r"obj\['opt'\]\[0\]", "object"),
        ([b"raw bytes"], r"obj\[0\]", "bytes"),
        ({"f": lambda x: x}, r"obj\['f'\]", "function"),
    ],
)
def test_saving_an_unsupported_type_names_key_path_and_type(
    tmp_path, obj, where, type_name
):
    with pytest.raises(TypeError, match=f"{where}.*{type_name}"):
        tg.save(obj, tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def test_saving_an_object_array_is_a_type_error_naming_the_key(tmp_path):
    bad = {"layer": {"w": np.array([1, "two"], dtype=object)}}
    with pytest.raises(TypeError, match=r"obj\['layer'\]\['w'\].*object"):
        tg.save(bad, tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("key", [1.5, (1, 2), None])
def test_saving_a_dict_with_a_non_str_int_key_is_a_type_error(tmp_path, key):
    with pytest.raises(TypeError, match=r"key .* only str and int"):
        tg.save({"outer": {key: 1}}, tmp_path / "x.npz")


def test_saving_a_structure_that_contains_itself_is_a_value_error(tmp_path):
    loop: dict = {"a": []}
    loop["a"].append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        tg.save(loop, tmp_path / "x.npz")


def test_the_same_list_twice_is_not_a_cycle(tmp_path):
    shared = [1, 2]
    tg.save({"a": shared, "b": shared}, tmp_path / "x")
    assert tg.load(tmp_path / "x") == {"a": [1, 2], "b": [1, 2]}


# ---------------------------------------------------------------- load errors


def test_loading_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.npz"):
        tg.load(tmp_path / "missing.npz")


def _saved_bytes(tmp_path):
    path = tmp_path / "good.npz"
    tg.save({"w": np.arange(20.0), "meta": {"step": 1}}, path)
    return path.read_bytes()


@pytest.mark.parametrize("keep", [0, 1, 10, 0.5, -1])
def test_loading_a_truncated_file_is_a_value_error_naming_the_path(tmp_path, keep):
    data = _saved_bytes(tmp_path)
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    path = tmp_path / "cut.npz"
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match=r"cut\.npz.*not a valid tinygrad_bp file"):
        tg.load(path)


def test_loading_a_file_with_a_flipped_byte_is_a_value_error(tmp_path):
    data = bytearray(_saved_bytes(tmp_path))
    # The last array byte of arr_0 sits just before the next local file header.
    data[data.index(b"PK\x03\x04", 1) - 1] ^= 0xFF
    (tmp_path / "flip.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="not a valid tinygrad_bp file"):
        tg.load(tmp_path / "flip.npz")


def test_loading_a_single_npy_array_is_a_value_error(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(3))
    with pytest.raises(ValueError, match=r"a\.npy.*not a valid.*single \.npy"):
        tg.load(tmp_path / "a.npy")


class _RunsCodeWhenUnpickled:
    ran = False

    def __reduce__(self):
        return (_mark_ran, ())


def _mark_ran():
    _RunsCodeWhenUnpickled.ran = True
    return "pwned"


def test_loading_a_pickle_file_is_refused_without_running_code(tmp_path):
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"w": _RunsCodeWhenUnpickled()}))
    _RunsCodeWhenUnpickled.ran = False
    with pytest.raises(ValueError, match="not a valid tinygrad_bp file"):
        tg.load(path)
    assert not _RunsCodeWhenUnpickled.ran


def test_loading_an_npz_with_an_object_array_names_the_member_and_runs_no_code(
    tmp_path,
):
    path = tmp_path / "evil.npz"
    payload = np.array([_RunsCodeWhenUnpickled(), 1], dtype=object)
    np.savez(path, w=np.ones(2), payload=payload)
    _RunsCodeWhenUnpickled.ran = False
    with pytest.raises(ValueError, match=r"evil\.npz.*'payload'.*pickle"):
        tg.load(path)
    assert not _RunsCodeWhenUnpickled.ran


def _write_structure(path, structure, **arrays):
    text = structure if isinstance(structure, str) else json.dumps(structure)
    member = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    np.savez(path, **arrays, **{STRUCTURE: member})


def _document(root):
    return {"format": "tinygrad_bp", "version": 1, "root": root}


def test_a_structure_referring_to_a_missing_array_names_the_key(tmp_path):
    path = tmp_path / "m.npz"
    root = {"dict": [["w", {"array": "arr_0"}], ["b", {"array": "arr_7"}]]}
    _write_structure(path, _document(root), arr_0=np.ones(2))
    with pytest.raises(ValueError, match=r"m\.npz.*'arr_7'"):
        tg.load(path)


def test_a_hand_written_structure_is_decoded(tmp_path):
    path = tmp_path / "m.npz"
    root = {"dict": [[3, [{"array": "arr_0"}, "x"]]]}
    _write_structure(path, _document(root), arr_0=np.ones(2))
    assert_same(tg.load(path), {3: [np.ones(2), "x"]})


@pytest.mark.parametrize(
    "structure",
    [
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"format": "other", "version": 1, "root": None}),
        json.dumps({"format": "tinygrad_bp", "version": 99, "root": None}),
        json.dumps({"format": "tinygrad_bp", "version": 1}),
        json.dumps(_document({"surprise": 1})),
        json.dumps(_document({"dict": [["a", 1, 2]]})),
        json.dumps(_document({"dict": [[[1], 1]]})),
        json.dumps(_document({"array": ["arr_0"]})),
    ],
)
def test_a_malformed_structure_member_is_a_value_error(tmp_path, structure):
    path = tmp_path / "m.npz"
    _write_structure(path, structure, arr_0=np.ones(2))
    with pytest.raises(ValueError, match=r"m\.npz.*not a valid tinygrad_bp file"):
        tg.load(path)


def test_load_accepts_str_and_pathlib(tmp_path):
    tg.save([1, "two"], str(tmp_path / "a"))
    assert tg.load(pathlib.Path(tmp_path / "a")) == [1, "two"]
    assert tg.load(str(tmp_path / "a")) == [1, "two"]


def test_public_names():
    assert tg.save is serialization.save
    assert tg.load is serialization.load
