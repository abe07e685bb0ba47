"""tinygrad_bp.save / load with .safetensors paths: round trips, PyTorch, errors."""

from __future__ import annotations

import json
import os
import pickle
import struct
import sys

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_serialization import assert_same, expected, leftovers

import tinygrad_bp as tg
from tinygrad_bp import nn

STRUCTURE = "__tinygrad_bp_structure__"
CHECKSUMS = "__tinygrad_bp_crc32__"
MISSING = "safetensors is not installed: pip install 'tinygrad_bp[safetensors]'"
NO_TORCH = "torch is not installed: the PyTorch interop checks need it"


@pytest.fixture(scope="module")
def safetensors():
    return pytest.importorskip("safetensors", reason=MISSING)


@pytest.fixture(scope="module")
def torch(safetensors):
    return pytest.importorskip("torch", reason=NO_TORCH)


def header(path):
    """The JSON header of a .safetensors file, read by hand."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + size])


def assert_exact(got, want, where="obj"):
    """Same dtype (byte order aside), shape and bytes: -0.0 and NaN payloads too."""
    assert isinstance(got, np.ndarray), where
    assert got.dtype == want.dtype.newbyteorder("="), where
    assert got.shape == want.shape, where
    little = np.asarray(want, dtype=want.dtype.newbyteorder("<"), order="C")
    assert got.tobytes() == little.tobytes(), where


# ---------------------------------------------------------------- strategies

# Every dtype the library uses, plus the rest that safetensors and NumPy share.
DTYPES = [
    np.float32,
    np.float64,
    np.float16,
    np.int64,
    np.int32,
    np.int8,
    np.uint8,
    np.bool_,
    np.int16,
    np.uint16,
    np.uint32,
    np.uint64,
]
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
arrays = st.sampled_from(DTYPES).flatmap(lambda dtype: hnp.arrays(dtype, shapes))


@st.composite
def views(draw):
    """An array, or a non-contiguous / big-endian / Fortran-ordered view of one."""
    array = draw(arrays)
    kind = draw(st.sampled_from(["plain", "transposed", "strided", "fortran", "big"]))
    if kind == "transposed":
        return array.T
    if kind == "strided" and array.ndim:
        return array[..., ::-2]
    if kind == "fortran":
        return np.asfortranarray(array)
    if kind == "big":
        return array.astype(array.dtype.newbyteorder(">"))
    return array


names = st.text(min_size=1, max_size=10)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
structures = st.recursive(
    scalars | arrays,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(names | st.integers(), children, max_size=4)
    ),
    max_leaves=12,
)


# ---------------------------------------------------------------- round trips


@settings(max_examples=60, deadline=None)
@given(state=st.dictionaries(names, views(), max_size=6))
def test_flat_state_dicts_round_trip_exactly_for_every_dtype_and_layout(
    safetensors, tmp_path_factory, state
):
    path = tmp_path_factory.mktemp("flat") / "model.safetensors"
    tg.save(state, path)
    loaded = tg.load(path)
    assert list(loaded) == list(state)
    for name, want in state.items():
        got = loaded[name]
        assert_exact(got, want, name)
        assert got.flags.writeable and got.flags.c_contiguous, name
    # Other readers see the same tensors under the same names.
    plain = safetensors.numpy.load_file(path)
    assert sorted(plain) == sorted(state)
    for name, want in state.items():
        assert_exact(plain[name], want, name)


@settings(max_examples=40, deadline=None)
@given(obj=structures)
def test_nested_structures_round_trip_as_with_npz(safetensors, tmp_path_factory, obj):
    directory = tmp_path_factory.mktemp("nested")
    tg.save(obj, directory / "state.safetensors")
    tg.save(obj, directory / "state.npz")
    got = tg.load(directory / "state.safetensors")
    assert_same(got, expected(obj))
    assert_same(got, tg.load(directory / "state.npz"))


@pytest.mark.parametrize("dtype", DTYPES[:8])
def test_zero_d_and_empty_arrays_of_each_library_dtype(safetensors, tmp_path, dtype):
    state = {
        "scalar": np.ones((), dtype),
        "empty": np.zeros((0, 3), dtype),
        "matrix": np.arange(12).reshape(3, 4).astype(dtype).T,
    }
    tg.save(state, tmp_path / "m.safetensors")
    loaded = tg.load(tmp_path / "m.safetensors")
    for name, want in state.items():
        assert_exact(loaded[name], want, name)


def test_float_special_values_keep_their_bits(safetensors, tmp_path):
    values = np.array([-0.0, np.inf, -np.inf, np.nan, 1e-45, 65504], np.float32)
    state = {"f32": values, "f16": values.astype(np.float16), "f64": values * 1.0}
    tg.save(state, tmp_path / "s.safetensors")
    loaded = tg.load(tmp_path / "s.safetensors")
    for name, want in state.items():
        assert_exact(loaded[name], want, name)


def test_a_checkpoint_with_model_optimizer_and_epoch_round_trips(safetensors, tmp_path):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = tg.optim.Adam(model.parameters(), lr=0.01)
    nn.functional.mse_loss(model(tg.randn(5, 3)), tg.zeros(5, 2)).backward()
    opt.step()
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "epoch": 7,
    }
    tg.save(checkpoint, tmp_path / "ckpt.safetensors")
    loaded = tg.load(tmp_path / "ckpt.safetensors")
    assert_same(loaded, expected(checkpoint))
    restored = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    restored.load_state_dict(loaded["model"])
    tg.optim.Adam(restored.parameters(), lr=0.01).load_state_dict(loaded["optimizer"])


def test_tensor_names_are_dotted_key_paths(safetensors, tmp_path):
    w = tg.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    state = {
        "model": {"0.weight": w, "0.bias": np.zeros(3, np.float32)},
        "optimizer": {"state": {0: {"exp_avg": np.ones(2)}}, "lr": 0.1},
        "history": [np.arange(2), np.arange(3)],
    }
    tg.save(state, tmp_path / "n.safetensors")
    tensors = header(tmp_path / "n.safetensors")
    metadata = tensors.pop("__metadata__")
    assert sorted(tensors) == [
        "history.0",
        "history.1",
        "model.0.bias",
        "model.0.weight",
        "optimizer.state.0.exp_avg",
    ]
    assert tensors["model.0.weight"]["dtype"] == "F32"
    assert tensors["model.0.weight"]["shape"] == [2, 3]
    assert sorted(metadata) == [CHECKSUMS, STRUCTURE]
    assert_same(tg.load(tmp_path / "n.safetensors")["model"]["0.weight"], w.data)


def test_a_model_state_dict_keeps_its_own_names(safetensors, tmp_path):
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    tg.save(model.state_dict(), tmp_path / "m.safetensors")
    plain = safetensors.numpy.load_file(tmp_path / "m.safetensors")
    assert sorted(plain) == ["0.bias", "0.weight", "2.bias", "2.weight"]


@pytest.mark.parametrize(
    ("state", "names"),
    [
        ({"a.b": np.ones(1), "a": {"b": np.zeros(1)}}, ["a.b", "a.b#1"]),
        ({"__metadata__": np.ones(2)}, ["__metadata__#1"]),
        ({"": np.ones(1), "x": [np.ones(1)]}, ["", "x.0"]),
        (np.arange(3), ["tensor"]),
    ],
    ids=["clash", "reserved", "empty-key", "bare-array"],
)
def test_clashing_and_reserved_names_get_a_suffix_and_still_round_trip(
    safetensors, tmp_path, state, names
):
    tg.save(state, tmp_path / "c.safetensors")
    assert sorted(set(header(tmp_path / "c.safetensors")) - {"__metadata__"}) == names
    assert_same(tg.load(tmp_path / "c.safetensors"), expected(state))


@pytest.mark.parametrize(
    "name", ["w.safetensors", "W.SafeTensors", "a.npz.safetensors"]
)
def test_the_suffix_chooses_the_format_in_any_case(safetensors, tmp_path, name):
    tg.save({"w": np.ones(2)}, tmp_path / name)
    assert (tmp_path / name).read_bytes()[:2] != b"PK"
    assert os.listdir(tmp_path) == [name]
    assert_same(tg.load(str(tmp_path / name)), {"w": np.ones(2)})


def test_other_suffixes_still_write_npz(safetensors, tmp_path):
    for name in ["w.npz", "w.safetensors.npz", "w.st"]:
        tg.save({"w": np.ones(2)}, tmp_path / name)
        assert (tmp_path / name).read_bytes()[:2] == b"PK", name


# ---------------------------------------------------------------- PyTorch


def _torch_mlp(torch):
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)
    )


def _our_mlp():
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))


def to_or_from_torch(state):
    """The one-line conversion: Linear weights are (in, out) here, (out, in) there."""
    return {k: v.T if k.endswith("weight") else v for k, v in state.items()}


def test_a_torch_file_loads_and_gives_the_same_outputs(torch, tmp_path):
    import safetensors.torch

    theirs = _torch_mlp(torch)
    safetensors.torch.save_file(theirs.state_dict(), tmp_path / "torch.safetensors")
    loaded = tg.load(tmp_path / "torch.safetensors")
    assert {k: v.dtype for k, v in loaded.items()} == dict.fromkeys(
        ["0.bias", "0.weight", "2.bias", "2.weight"], np.float32
    )
    ours = _our_mlp()
    ours.load_state_dict(to_or_from_torch(loaded))
    x = np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32)
    with torch.no_grad():
        want = theirs(torch.from_numpy(x)).numpy()
    got = ours(tg.Tensor(x)).data
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_our_file_loads_in_torch_and_gives_the_same_outputs(torch, tmp_path):
    import safetensors.torch

    tg.manual_seed(0)
    ours = _our_mlp()
    tg.save(to_or_from_torch(ours.state_dict()), tmp_path / "ours.safetensors")
    theirs = _torch_mlp(torch)
    theirs.load_state_dict(safetensors.torch.load_file(tmp_path / "ours.safetensors"))
    x = np.random.default_rng(1).standard_normal((16, 3)).astype(np.float32)
    with torch.no_grad():
        got = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, ours(tg.Tensor(x)).data, rtol=1e-6, atol=1e-7)


def test_a_torch_bfloat16_tensor_is_refused_by_name(torch, tmp_path):
    import safetensors.torch

    tensors = {"ok": torch.ones(2), "half": torch.ones(2, dtype=torch.bfloat16)}
    safetensors.torch.save_file(tensors, tmp_path / "bf16.safetensors")
    with pytest.raises(ValueError, match=r"bf16\.safetensors.*'half'.*dtype"):
        tg.load(tmp_path / "bf16.safetensors")


# ---------------------------------------------------------------- the extra


@pytest.fixture
def without_safetensors(monkeypatch):
    # None in sys.modules makes `import safetensors` raise ModuleNotFoundError.
    for name in ["safetensors", "safetensors.numpy"]:
        monkeypatch.setitem(sys.modules, name, None)


def test_saving_without_the_extra_names_it_and_writes_nothing(
    without_safetensors, tmp_path
):
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'tinygrad_bp\[safe"):
        tg.save({"w": np.ones(2)}, tmp_path / "w.safetensors")
    assert os.listdir(tmp_path) == []


def test_loading_without_the_extra_names_it(without_safetensors, tmp_path):
    (tmp_path / "w.safetensors").write_bytes(b"anything")
    with pytest.raises(ImportError, match=r"pip install 'tinygrad_bp\[safetensors\]'"):
        tg.load(tmp_path / "w.safetensors")


def test_npz_needs_no_extra(without_safetensors, tmp_path):
    tg.save({"w": np.ones(2)}, tmp_path / "w.npz")
    assert_same(tg.load(tmp_path / "w.npz"), {"w": np.ones(2)})


# ---------------------------------------------------------------- save errors


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (np.ones(2, np.complex128), "complex128"),
        (np.ones(2, np.complex64), "complex64"),
        (np.array(["a", "bc"]), "<U2"),
        (np.zeros(2, "datetime64[s]"), "datetime64"),
        (np.zeros(2, [("x", np.float32)]), r"\[\('x'"),
    ],
)
def test_an_unsupported_dtype_names_key_and_dtype_and_writes_nothing(
    safetensors, tmp_path, value, dtype
):
    path = tmp_path / "m.safetensors"
    tg.save({"w": np.arange(3)}, path)
    before = path.read_bytes()
    bad = {"fine": np.ones(3), "layers": [{"w": value}]}
    with pytest.raises(TypeError, match=rf"obj\['layers'\]\[0\]\['w'\].*{dtype}.*npz"):
        tg.save(bad, path)
    assert path.read_bytes() == before
    assert leftovers(tmp_path, ["m.safetensors"]) == []


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        ({"a": {1, 2}}, r"obj\['a'\].*set"),
        ({"w": np.array([1, "x"], dtype=object)}, r"obj\['w'\].*object"),
        ({(1, 2): np.ones(1)}, r"key \(1, 2\).*tuple"),
    ],
)
def test_what_npz_refuses_is_refused_here_too(safetensors, tmp_path, obj, match):
    with pytest.raises(TypeError, match=match):
        tg.save(obj, tmp_path / "x.safetensors")
    assert os.listdir(tmp_path) == []


def _fail(*args, **kwargs):
    raise OSError("simulated failure")


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_a_failed_save_leaves_the_old_file_and_no_temp_file(
    safetensors, tmp_path, monkeypatch, step
):
    path = tmp_path / "model.safetensors"
    tg.save({"w": np.arange(5)}, path)
    before = path.read_bytes()
    monkeypatch.setattr(os, step, _fail)
    with pytest.raises(OSError, match="simulated"):
        tg.save({"w": np.zeros(100)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert leftovers(tmp_path, ["model.safetensors"]) == []


# ---------------------------------------------------------------- load errors


def _good_bytes(tmp_path):
    path = tmp_path / "good.safetensors"
    tg.save({"w": np.arange(20.0), "meta": {"step": 1, "b": np.ones(3, bool)}}, path)
    return path.read_bytes()


def test_loading_a_missing_file_raises_file_not_found(safetensors, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.safetensors"):
        tg.load(tmp_path / "missing.safetensors")


@pytest.mark.parametrize("keep", [0, 1, 7, 8, 9, 0.5, -1])
def test_a_truncated_file_is_a_value_error_naming_the_path(safetensors, tmp_path, keep):
    data = _good_bytes(tmp_path)
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    (tmp_path / "cut.safetensors").write_bytes(data[:cut])
    with pytest.raises(ValueError, match=r"cut\.safetensors.*not a valid safetensors"):
        tg.load(tmp_path / "cut.safetensors")


def _with_header(data, edit):
    (size,) = struct.unpack("<Q", data[:8])
    document = json.loads(data[8 : 8 + size])
    text = edit(document).encode("utf-8") if callable(edit) else edit
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + size :]


def _shift_offsets(document):
    document["w"]["data_offsets"][1] += 8
    return json.dumps(document)


def _bad_dtype(document):
    document["w"]["dtype"] = "F99"
    return json.dumps(document)


@pytest.mark.parametrize(
    "edit",
    [
        b"{not json at all",
        b"[1, 2, 3]",
        b'{"w": {"dtype": "F64"}}',
        _shift_offsets,
        _bad_dtype,
    ],
    ids=["garbage", "not-an-object", "no-offsets", "offsets", "dtype"],
)
def test_a_corrupt_header_is_a_value_error(safetensors, tmp_path, edit):
    (tmp_path / "bad.safetensors").write_bytes(
        _with_header(_good_bytes(tmp_path), edit)
    )
    with pytest.raises(ValueError, match=r"bad\.safetensors.*not a valid"):
        tg.load(tmp_path / "bad.safetensors")


def test_a_huge_header_length_is_a_value_error(safetensors, tmp_path):
    data = _good_bytes(tmp_path)
    (tmp_path / "big.safetensors").write_bytes(struct.pack("<Q", 2**62) + data[8:])
    with pytest.raises(ValueError, match=r"big\.safetensors.*not a valid safetensors"):
        tg.load(tmp_path / "big.safetensors")


def test_a_flipped_data_byte_fails_the_checksum(safetensors, tmp_path):
    data = bytearray(_good_bytes(tmp_path))
    data[-1] ^= 0xFF
    (tmp_path / "flip.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"flip\.safetensors.*CRC-32"):
        tg.load(tmp_path / "flip.safetensors")


def _edit_metadata(data, key, value):
    def edit(document):
        document["__metadata__"][key] = value
        return json.dumps(document)

    return _with_header(data, edit)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        (STRUCTURE, "{not json", "not a valid tinygrad_bp file"),
        (STRUCTURE, json.dumps({"format": "other", "version": 1, "root": 1}), "format"),
        (
            STRUCTURE,
            json.dumps({"format": "tinygrad_bp", "version": 1, "root": {"array": "x"}}),
            "'x'",
        ),
        (CHECKSUMS, "[1]", "checksum entry"),
        (CHECKSUMS, json.dumps({"w": 1}), "'w' fails its CRC-32"),
        (CHECKSUMS, json.dumps({"gone": 1}), "'gone' fails its CRC-32"),
    ],
)
def test_forged_metadata_is_a_value_error(safetensors, tmp_path, key, value, match):
    data = _edit_metadata(_good_bytes(tmp_path), key, value)
    (tmp_path / "forged.safetensors").write_bytes(data)
    with pytest.raises(ValueError, match=rf"forged\.safetensors.*{match}"):
        tg.load(tmp_path / "forged.safetensors")


class _RunsCodeWhenUnpickled:
    ran = False

    def __reduce__(self):
        return (_mark_ran, ())


def _mark_ran():
    _RunsCodeWhenUnpickled.ran = True
    return "pwned"


@pytest.mark.parametrize("kind", ["pickle", "npz", "text"])
def test_a_file_that_is_not_safetensors_is_a_value_error_and_runs_nothing(
    safetensors, tmp_path, kind
):
    path = tmp_path / "other.safetensors"
    if kind == "pickle":
        path.write_bytes(pickle.dumps({"w": _RunsCodeWhenUnpickled()}))
    elif kind == "npz":
        with open(path, "wb") as f:
            np.savez(f, w=np.ones(2))
    else:
        path.write_text("version https://git-lfs.github.com/spec/v1\n" * 4)
    _RunsCodeWhenUnpickled.ran = False
    with pytest.raises(
        ValueError, match=r"other\.safetensors.*not a valid safetensors"
    ):
        tg.load(path)
    assert not _RunsCodeWhenUnpickled.ran


def test_a_valid_empty_file_loads_as_an_empty_dict(safetensors, tmp_path):
    (tmp_path / "empty.safetensors").write_bytes(struct.pack("<Q", 8) + b"{}      ")
    assert tg.load(tmp_path / "empty.safetensors") == {}
