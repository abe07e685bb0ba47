"""detect_anomaly and the read-only protection of arrays saved for backward."""

import numpy as np
import pytest

import tinygrad_bp as tg
from tinygrad_bp.tensor import Tensor


# ----------------------------------------------------------------- detect_anomaly
def test_log_of_a_negative_number_is_named_in_the_forward_pass():
    x = tg.tensor([1.0, -1.0], requires_grad=True)
    with tg.detect_anomaly(), pytest.raises(FloatingPointError) as info:
        x.log()
    message = str(info.value)
    assert "Log" in message and "forward" in message and "(2,)" in message


def test_zero_over_zero_in_the_forward_pass():
    a = tg.tensor([0.0, 1.0], requires_grad=True)
    with (
        tg.detect_anomaly(),
        pytest.raises(FloatingPointError, match=r"Div .*NaN.*forward"),
    ):
        a / tg.tensor([0.0, 1.0])


def test_sqrt_at_zero_is_caught_in_the_backward_pass_with_the_forward_traceback():
    x = tg.tensor([0.0, 4.0], requires_grad=True)
    with tg.detect_anomaly():
        y = x.sqrt()  # the line the error must point to
        with pytest.raises(FloatingPointError) as info:
            y.sum().backward()
    message = str(info.value)
    assert "Sqrt" in message and "backward" in message and "infinity" in message
    assert "y = x.sqrt()" in message and __file__ in message


def test_nothing_is_checked_outside_the_context():
    assert Tensor.__dict__["_apply"].__func__.__name__ == "_apply"
    x = tg.tensor([0.0, -1.0], requires_grad=True)
    with np.errstate(all="ignore"):
        y = x.log() + x.sqrt()
        y.sum().backward()
    assert np.isnan(y.data[1]) and np.isinf(x.grad.data[0])


def test_the_context_restores_plain_recording_even_after_an_error():
    plain = Tensor.__dict__["_apply"]
    with pytest.raises(FloatingPointError), tg.detect_anomaly(), tg.detect_anomaly():
        tg.tensor([-1.0]).log()
    assert Tensor.__dict__["_apply"] is not plain  # a fresh staticmethod object...
    assert Tensor.__dict__["_apply"].__func__ is plain.__func__  # ...of the plain one


def test_finite_computations_pass_through_anomaly_mode_unchanged():
    x = tg.tensor([[0.5, -1.0]], requires_grad=True, dtype=np.float64)
    w = tg.tensor([[1.0], [2.0]], requires_grad=True, dtype=np.float64)
    with tg.detect_anomaly():
        loss = (x @ w).tanh().sum()
        loss.backward()
    assert x.grad is not None and np.isfinite(w.grad.data).all()


# ---------------------------------------------------- arrays saved for backward
def test_writing_into_a_saved_leaf_raises_at_the_write():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    with pytest.raises(ValueError, match="read-only"):
        w.data[...] = 0
    with pytest.raises(ValueError, match="read-only"):
        w.data -= 0.1
    loss.backward()
    assert w.grad.tolist() == [2.0, 4.0]


def test_an_optimizer_step_between_forward_and_backward_raises():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    opt = tg.optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    loss = (w * 3).sum()  # a second forward, not yet backpropagated
    with pytest.raises(ValueError):
        opt.step()
    np.testing.assert_array_equal(w.data, [1.0, 2.0])
    loss.backward()
    opt.step()  # graph released: fine again
    np.testing.assert_allclose(w.data, [1.0 - 0.1 * 5, 2.0 - 0.1 * 7])


def test_replacing_the_data_of_a_saved_leaf_raises_at_backward_naming_it():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * 3).sum()
    w.data = np.zeros(2, dtype=np.float32)
    with pytest.raises(RuntimeError, match=r"Mul: the data of its input 0 .*\(2,\)"):
        loss.backward()


def test_arrays_are_writable_again_after_backward_or_when_the_graph_goes_away():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    x = tg.tensor([3.0, 4.0])
    (w * x).sum().backward()
    assert w.data.flags.writeable and x.data.flags.writeable
    y = (w * x).sum()
    assert not w.data.flags.writeable and not x.data.flags.writeable
    del y
    assert w.data.flags.writeable and x.data.flags.writeable


def test_a_leaf_in_two_live_graphs_stays_locked_until_both_are_released():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    first, second = (w * 2).sum(), (w * w).sum()
    first.backward()
    assert not w.data.flags.writeable
    second.backward()
    assert w.data.flags.writeable
    assert w.grad.tolist() == [2 + 2, 2 + 4]


def test_retain_graph_keeps_the_lock_and_an_already_read_only_array_stays_so():
    w = tg.tensor([1.0], requires_grad=True)
    y = (w * w).sum()
    y.backward(retain_graph=True)
    assert not w.data.flags.writeable
    del y
    assert w.data.flags.writeable
    frozen = np.ones(2)
    frozen.setflags(write=False)
    t = tg.Tensor._wrap(frozen).requires_grad_()
    (t * 2).sum().backward()
    assert not frozen.flags.writeable


def test_a_normal_training_loop_is_unaffected():
    tg.manual_seed(0)
    X = tg.randn(32, 3)
    y = (X.data.sum(axis=1, keepdims=True) > 0).astype(np.float32)
    w = tg.zeros(3, 1, requires_grad=True)
    b = tg.zeros(1, requires_grad=True)
    opt = tg.optim.SGD([w, b], lr=0.5)
    losses = []
    for _ in range(30):
        loss = ((X @ w + b).sigmoid() - y).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.7
