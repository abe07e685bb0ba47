"""Whether operations are recorded for backward: `no_grad` and `enable_grad`."""

from __future__ import annotations

import functools


class _State:
    # A class attribute, not a module global, so the hot path reads one attribute.
    enabled = True


def is_grad_enabled() -> bool:
    """True when new operations are recorded in the graph."""
    return _State.enabled


class _GradModeSwitch:
    """Context manager and decorator that sets grad mode and restores it on exit."""

    mode: bool

    def __enter__(self) -> None:
        self._previous = _State.enabled
        _State.enabled = self.mode

    def __exit__(self, *exc) -> None:
        _State.enabled = self._previous

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradModeSwitch):
    """Record nothing inside the block (inference, optimizer updates).

    >>> import tinygrad_bp as tg
    >>> x = tg.tensor([1.0], requires_grad=True)
    >>> with tg.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    mode = False


class enable_grad(_GradModeSwitch):
    """Record again inside a `no_grad` block.

    >>> import tinygrad_bp as tg
    >>> x = tg.tensor([1.0], requires_grad=True)
    >>> with tg.no_grad(), tg.enable_grad():
    ...     y = x * 2
    >>> y.requires_grad
    True
    """

    mode = True
