"""tinygrad_bp.data: DataLoader, the built-in datasets, train_test_split, the text
corpus and CharDataset."""

from __future__ import annotations

import itertools
import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_bp as tg
from tinygrad_bp.data import (
    CharDataset,
    DataLoader,
    digits,
    moons,
    spirals,
    text,
    train_test_split,
)

BAD_POSITIVE_INTS = [0, -3, 2.5, True, "4", None]
BAD_NOISES = [-0.1, math.nan, math.inf, "0.1", None, True]
BAD_FRACTIONS = [0, 1, 0.0, 1.0, -0.2, 1.5, math.nan, "0.2", True]


def epoch(loader):
    """The y values of one epoch, batch by batch, as lists."""
    return [yb.numpy().tolist() for _, yb in loader]


def labelled(n):
    """X whose row i is (i, -i), and y = i, so every batch shows which rows it took."""
    y = np.arange(n, dtype=np.int64)
    return np.stack([y, -y], axis=1).astype(np.float32), y


# ---------------------------------------------------------------- DataLoader


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 40),
    batch_size=st.integers(1, 12),
    shuffle=st.booleans(),
    drop_last=st.booleans(),
)
def test_batches_cover_every_sample_once_with_the_right_sizes(
    n, batch_size, shuffle, drop_last
):
    X, y = labelled(n)
    loader = DataLoader(X, y, batch_size, shuffle=shuffle, drop_last=drop_last)
    batches = list(loader)
    full, rest = divmod(n, batch_size)
    sizes = [batch_size] * full + ([rest] if rest and not drop_last else [])
    assert len(loader) == len(batches)
    assert [len(yb.numpy()) for _, yb in batches] == sizes
    seen = np.concatenate([yb.numpy() for _, yb in batches] or [np.zeros(0, int)])
    assert len(set(seen.tolist())) == len(seen) == sum(sizes)
    if not drop_last:
        assert sorted(seen.tolist()) == list(range(n))
    for xb, yb in batches:
        np.testing.assert_array_equal(xb.numpy(), X[yb.numpy()])


def test_batches_are_tensors_that_keep_dtypes_and_do_not_require_grad():
    X = tg.Tensor(np.ones((5, 3), np.float32), requires_grad=True)
    loader = DataLoader(X, np.arange(5), batch_size=2)
    for xb, yb in loader:
        assert isinstance(xb, tg.Tensor) and isinstance(yb, tg.Tensor)
        assert xb.dtype == np.float32 and yb.dtype == np.int64
        assert not xb.requires_grad and not yb.requires_grad
    X64 = np.ones((4, 2), np.float64)
    xb, _ = next(iter(DataLoader(X64, np.arange(4), batch_size=4)))
    assert xb.dtype == np.float64


def test_a_batch_is_a_copy_not_a_view_of_the_data():
    X, y = labelled(4)
    xb, _ = next(iter(DataLoader(X, y, batch_size=4, shuffle=False)))
    xb.data[...] = 99
    np.testing.assert_array_equal(X, labelled(4)[0])


def test_without_shuffle_the_order_is_the_data_order():
    X, y = labelled(7)
    assert epoch(DataLoader(X, y, batch_size=3, shuffle=False)) == [
        [0, 1, 2],
        [3, 4, 5],
        [6],
    ]


def test_drop_last_drops_only_the_partial_batch():
    X, y = labelled(7)
    loader = DataLoader(X, y, batch_size=3, shuffle=False, drop_last=True)
    assert len(loader) == 2
    assert epoch(loader) == [[0, 1, 2], [3, 4, 5]]
    assert len(DataLoader(X, y, batch_size=8, drop_last=True)) == 0
    assert epoch(DataLoader(X, y, batch_size=8, drop_last=True)) == []


def test_shuffled_order_is_reproducible_under_manual_seed():
    X, y = labelled(30)
    loader = DataLoader(X, y, batch_size=4)
    tg.manual_seed(123)
    first = [epoch(loader), epoch(loader)]
    tg.manual_seed(123)
    second = [epoch(loader), epoch(loader)]
    assert first == second
    tg.manual_seed(124)
    assert epoch(loader) != first[0]


def test_a_new_epoch_reshuffles():
    X, y = labelled(30)
    loader = DataLoader(X, y, batch_size=30)
    tg.manual_seed(0)
    orders = [epoch(loader)[0] for _ in range(3)]
    assert orders[0] != list(range(30))
    assert orders[0] != orders[1] != orders[2]


def test_manual_seed_after_building_the_loader_still_fixes_the_order():
    X, y = labelled(20)
    loader = DataLoader(X, y, batch_size=5)
    tg.manual_seed(7)
    a = epoch(loader)
    _ = tg.rand(3)
    tg.manual_seed(7)
    assert epoch(loader) == a


def test_the_order_is_drawn_when_the_epoch_starts():
    X, y = labelled(20)
    loader = DataLoader(X, y, batch_size=5)
    tg.manual_seed(1)
    batches = iter(loader)
    _ = tg.rand(10)  # draws in between must not change the epoch already begun
    started = [yb.numpy().tolist() for _, yb in batches]
    tg.manual_seed(1)
    assert epoch(loader) == started


def test_mismatched_lengths_are_a_value_error_naming_both_shapes():
    with pytest.raises(ValueError, match=r"\(5, 2\).*\(4,\)"):
        DataLoader(np.zeros((5, 2)), np.zeros(4), batch_size=2)


def test_scalar_inputs_are_a_value_error():
    with pytest.raises(ValueError, match=r"X of shape \(\)"):
        DataLoader(np.float32(1.0), np.zeros(1), batch_size=1)


@pytest.mark.parametrize("batch_size", BAD_POSITIVE_INTS)
def test_batch_size_must_be_a_positive_int(batch_size):
    with pytest.raises(ValueError, match=f"batch_size.*{batch_size!r}"):
        DataLoader(np.zeros((4, 2)), np.zeros(4), batch_size=batch_size)


def test_numpy_int_batch_size_is_accepted():
    assert len(DataLoader(np.zeros((4, 2)), np.zeros(4), batch_size=np.int64(3))) == 2


# ---------------------------------------------------------------- spirals


def test_spirals_shapes_dtypes_and_balance():
    tg.manual_seed(0)
    X, y = spirals(n_per_class=40, classes=5)
    assert X.shape == (200, 2) and X.dtype == np.float32
    assert y.shape == (200,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [40] * 5


def test_spirals_are_reproducible_under_manual_seed():
    tg.manual_seed(5)
    a = spirals()
    tg.manual_seed(5)
    b = spirals()
    tg.manual_seed(6)
    c = spirals()
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_noise_free_spiral_arms_are_rotations_of_each_other():
    classes = 3
    X, y = spirals(n_per_class=25, classes=classes, noise=0.0)
    radius = np.linalg.norm(X, axis=1)
    for k in range(classes):
        arm = X[y == k]
        assert np.all(np.diff(np.linalg.norm(arm, axis=1)) > 0)
        # Rotating arm 0 clockwise by 2*pi*k/classes (angles measured from the y axis).
        a = 2 * np.pi * k / classes
        rotated = X[y == 0] @ np.array(
            [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
        )
        np.testing.assert_allclose(arm, rotated, atol=1e-6)
    np.testing.assert_allclose(radius.max(), 1.0, rtol=1e-6)


def _train_accuracy(X, y, hidden=32, steps=400, lr=0.01):
    """Full-batch Adam on a 2-layer ReLU MLP, written with the core Tensor API only."""
    tg.manual_seed(0)
    classes = int(y.max()) + 1
    sizes = [X.shape[1], hidden, hidden, classes]
    params = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        w = tg.randn(fan_in, fan_out) * math.sqrt(2 / fan_in)
        params += [w.detach().requires_grad_(), tg.zeros(fan_out, requires_grad=True)]
    m = [np.zeros_like(p.data) for p in params]
    v = [np.zeros_like(p.data) for p in params]
    x, onehot = tg.Tensor(X), tg.Tensor(np.eye(classes, dtype=np.float32)[y])
    for t in range(1, steps + 1):
        h = x
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i + 2 < len(params):
                h = h.relu()
        loss = -(h.log_softmax(axis=1) * onehot).sum(axis=1).mean()
        for p in params:
            p.grad = None
        loss.backward()
        for p, mi, vi in zip(params, m, v, strict=True):
            mi[...] = 0.9 * mi + 0.1 * p.grad.data
            vi[...] = 0.999 * vi + 0.001 * p.grad.data**2
            step = mi / (1 - 0.9**t) / (np.sqrt(vi / (1 - 0.999**t)) + 1e-8)
            p.data = p.data - lr * step
    return float((h.numpy().argmax(axis=1) == y).mean())


def test_spirals_are_learnable_by_a_small_mlp():
    tg.manual_seed(0)
    X, y = spirals()
    assert _train_accuracy(X, y) >= 0.95


@pytest.mark.parametrize("value", BAD_POSITIVE_INTS)
@pytest.mark.parametrize("name", ["n_per_class", "classes"])
def test_spirals_reject_bad_counts(name, value):
    with pytest.raises(ValueError, match=f"{name}.*{value!r}"):
        spirals(**{name: value})


@pytest.mark.parametrize("noise", BAD_NOISES)
def test_spirals_reject_bad_noise(noise):
    with pytest.raises(ValueError, match=f"noise.*{noise!r}"):
        spirals(noise=noise)


# ---------------------------------------------------------------- moons


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 300))
def test_moons_have_n_points_in_two_balanced_classes(n):
    X, y = moons(n)
    assert X.shape == (n, 2) and X.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=2)
    assert counts.sum() == n and abs(int(counts[0]) - int(counts[1])) <= 1


def test_noise_free_moons_lie_on_two_interleaving_half_circles():
    X, y = moons(n=101, noise=0.0)
    upper, lower = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.linalg.norm(upper, axis=1), 1.0, atol=1e-6)
    assert np.all(upper[:, 1] >= -1e-6)
    np.testing.assert_allclose(
        np.linalg.norm(lower - [1.0, 0.5], axis=1), 1.0, atol=1e-6
    )
    assert np.all(lower[:, 1] <= 0.5 + 1e-6)
    # Interleaving: each moon reaches into the other's horizontal span.
    assert lower[:, 0].min() < upper[:, 0].max() and upper[:, 0].min() < 0


def test_moons_are_reproducible_under_manual_seed():
    tg.manual_seed(9)
    a, _ = moons()
    tg.manual_seed(9)
    b, _ = moons()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, moons()[0])


@pytest.mark.parametrize("n", BAD_POSITIVE_INTS)
def test_moons_reject_bad_n(n):
    with pytest.raises(ValueError, match=f"n must.*{n!r}"):
        moons(n)


@pytest.mark.parametrize("noise", BAD_NOISES)
def test_moons_reject_bad_noise(noise):
    with pytest.raises(ValueError, match=f"noise.*{noise!r}"):
        moons(noise=noise)


# ---------------------------------------------------------------- digits


def test_digits_via_scikit_learn():
    pytest.importorskip("sklearn")
    X, y = digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(X * 16, np.round(X * 16))
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_digits_without_scikit_learn_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'tinygrad_bp\[data\]'"):
        digits()


# ---------------------------------------------------------------- train_test_split


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 60), fraction=st.floats(0.01, 0.99))
def test_split_partitions_the_samples_and_keeps_pairs(n, fraction):
    n_test = math.ceil(fraction * n)
    X, y = labelled(n)
    if n_test >= n:
        with pytest.raises(ValueError, match="empty"):
            train_test_split(X, y, fraction)
        return
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, fraction)
    assert len(y_te) == n_test and len(y_tr) == n - n_test
    assert sorted(np.concatenate([y_tr, y_te]).tolist()) == list(range(n))
    np.testing.assert_array_equal(X_tr, X[y_tr])
    np.testing.assert_array_equal(X_te, X[y_te])


def test_split_is_shuffled_and_reproducible_under_manual_seed():
    X, y = labelled(50)
    tg.manual_seed(3)
    a = train_test_split(X, y)
    tg.manual_seed(3)
    b = train_test_split(X, y)
    for left, right in zip(a, b, strict=True):
        np.testing.assert_array_equal(left, right)
    assert a[3].tolist() != list(range(40, 50))


def test_split_accepts_tensors_and_returns_arrays():
    X, y = labelled(10)
    parts = train_test_split(tg.Tensor(X), tg.Tensor(y), 0.3)
    assert all(isinstance(p, np.ndarray) for p in parts)
    assert parts[2].dtype == np.int64


@pytest.mark.parametrize("fraction", BAD_FRACTIONS)
def test_split_rejects_bad_fractions(fraction):
    with pytest.raises(ValueError, match=f"test_fraction.*{fraction!r}"):
        train_test_split(*labelled(10), test_fraction=fraction)


def test_split_rejects_too_few_samples_and_mismatched_lengths():
    with pytest.raises(ValueError, match="empty"):
        train_test_split(*labelled(1), test_fraction=0.5)
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2,\)"):
        train_test_split(np.zeros((3, 2)), np.zeros(2))


# ---------------------------------------------------------------- text


def test_text_is_pythons_reference_documentation():
    corpus = text()
    assert isinstance(corpus, str) and len(corpus) > 300_000
    assert corpus.startswith('The "assert" statement')
    assert "The for statement" in corpus or 'The "for" statement' in corpus
    assert text() == corpus  # the same every call
    assert 60 < len(set(corpus)) < 200  # a character vocabulary, not bytes or words


def test_text_without_pydoc_data_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydoc_data.topics", None)
    with pytest.raises(ImportError, match="pydoc_data"):
        text()


# ---------------------------------------------------------------- CharDataset


def test_char_dataset_vocabulary_encode_decode():
    ds = CharDataset("abracadabra", block_size=3)
    assert ds.vocab == "abcdr" and ds.vocab_size == 5
    assert (
        ds.ids.dtype == np.int64
        and ds.ids.tolist() == ds.encode("abracadabra").tolist()
    )
    assert ds.encode("cab").tolist() == [2, 0, 1]
    assert ds.decode(ds.ids) == "abracadabra"
    assert ds.decode(tg.Tensor(np.array([4, 0]))) == "ra"
    assert ds.decode(np.array([[0, 1], [2, 3]])) == "abcd"
    assert ds.encode("").tolist() == [] and ds.decode([]) == ""
    assert "11 characters, vocab_size=5, block_size=3" in repr(ds)


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=2, max_size=60))
def test_encode_decode_round_trip_for_any_text(sample):
    ds = CharDataset(sample, block_size=1)
    assert ds.decode(ds.encode(sample)) == sample
    assert sorted(set(ds.ids.tolist())) == list(range(ds.vocab_size))
    assert list(ds.vocab) == sorted(set(sample))


def test_a_given_vocab_fixes_the_ids():
    ds = CharDataset("bad", block_size=1, vocab="dcba")
    assert ds.ids.tolist() == [2, 3, 0] and ds.vocab_size == 4
    with pytest.raises(ValueError, match=r"character 'x' at position 1 is not in"):
        CharDataset("bxd", block_size=1, vocab="dcba")
    for vocab in ("", "aab", ["a", "b"]):
        with pytest.raises(ValueError, match="vocab must be a non-empty str"):
            CharDataset("ab", block_size=1, vocab=vocab)


def test_windows_pair_each_context_with_the_next_characters():
    ds = CharDataset("0123456789", block_size=4)
    assert len(ds) == 6
    for i in range(len(ds)):
        x, y = ds[i]
        assert ds.decode(x) == "0123456789"[i : i + 4]
        assert ds.decode(y) == "0123456789"[i + 1 : i + 5]
    assert ds.decode(ds[-1][0]) == "5678"
    x, y = ds.windows([0, 5, 2])
    assert x.shape == y.shape == (3, 4) and x.dtype == y.dtype == np.int64
    assert ds.decode(x.numpy()[1]) + ds.decode(y.numpy()[1][-1:]) == "56789"


def test_batches_shapes_dtypes_and_next_character_targets():
    ds = CharDataset(text()[:5000], block_size=32)
    tg.manual_seed(0)
    x, y = ds.batch(8)
    assert isinstance(x, tg.Tensor) and isinstance(y, tg.Tensor)
    assert x.shape == y.shape == (8, 32)
    assert x.dtype == y.dtype == np.int64
    assert not x.requires_grad and not y.requires_grad
    np.testing.assert_array_equal(x.numpy()[:, 1:], y.numpy()[:, :-1])
    ids = ds.ids
    for row_x, row_y in zip(x.numpy(), y.numpy()):
        (start,) = [
            i for i in range(len(ds)) if np.array_equal(ids[i : i + 32], row_x)
        ][:1]
        assert row_y[-1] == ids[start + 32]  # the character after the context


def test_batches_are_reproducible_under_manual_seed():
    ds = CharDataset("the quick brown fox jumps over the lazy dog", block_size=5)
    tg.manual_seed(3)
    a = [ds.batch(4)[0].tolist() for _ in range(3)]
    tg.manual_seed(3)
    b = [ds.batch(4)[0].tolist() for _ in range(3)]
    tg.manual_seed(4)
    c = [ds.batch(4)[0].tolist() for _ in range(3)]
    assert a == b and a != c


def test_split_keeps_the_vocabulary_and_the_order():
    ds = CharDataset("abcdefghijklmnopqrst", block_size=3)
    train, held_out = ds.split(0.25)
    assert ds.decode(train.ids) == "abcdefghijklmno"
    assert held_out.decode(held_out.ids) == "pqrst"
    assert held_out.vocab == train.vocab == ds.vocab and held_out.block_size == 3
    assert held_out.encode("t").tolist() == [19]
    assert len(held_out) == 2
    with pytest.raises(ValueError, match="too short for block_size=3"):
        ds.split(0.1)


@pytest.mark.parametrize("block_size", BAD_POSITIVE_INTS)
def test_char_dataset_rejects_bad_block_sizes(block_size):
    with pytest.raises(ValueError, match=f"block_size.*{block_size!r}"):
        CharDataset("some text", block_size=block_size)


def test_char_dataset_errors_name_the_problem():
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        CharDataset(b"bytes", block_size=2)
    with pytest.raises(ValueError, match="3 characters is too short for block_size=3"):
        CharDataset("abc", block_size=3)
    ds = CharDataset("abcabc", block_size=2)
    with pytest.raises(ValueError, match=r"character 'z' at position 2"):
        ds.encode("abz")
    with pytest.raises(TypeError, match="text must be a str"):
        ds.encode([0, 1])
    with pytest.raises(
        ValueError, match=r"id 3 is outside the vocabulary \(ids 0 to 2\)"
    ):
        ds.decode([0, 3])
    with pytest.raises(ValueError, match="id -1"):
        ds.decode([-1])
    with pytest.raises(TypeError, match="ids must be integers"):
        ds.decode([0.5])
    with pytest.raises(IndexError, match="index 4 is out of range for 4 windows"):
        ds[4]
    with pytest.raises(TypeError, match="index must be an int"):
        ds[1.0]
    with pytest.raises(IndexError, match=r"starts must lie in 0..3"):
        ds.windows([0, 4])
    with pytest.raises(ValueError, match="1-D sequence of ints"):
        ds.windows([[0]])
    for held_out in (0, 1, 1.5, "0.1", True):
        with pytest.raises(ValueError, match="held_out must be in"):
            ds.split(held_out)


@pytest.mark.parametrize("batch_size", BAD_POSITIVE_INTS)
def test_char_dataset_batch_rejects_bad_sizes(batch_size):
    with pytest.raises(ValueError, match=f"batch_size.*{batch_size!r}"):
        CharDataset("abcdef", block_size=2).batch(batch_size)
