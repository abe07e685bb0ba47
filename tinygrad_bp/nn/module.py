"""Module and Parameter: the bookkeeping that turns a function into a trainable layer.

A `Module` keeps three ordered registries, filled as attributes are assigned:
`Parameter`s (trained), buffers (state that is saved but not trained, such as
BatchNorm's running statistics) and sub-`Module`s. Everything else (`parameters()`,
`state_dict()`, `train()`, the nested `repr`) walks those registries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

import tinygrad_bp as tg

__all__ = ["IncompatibleKeys", "Module", "Parameter"]


class Parameter(tg.Tensor):
    """A Tensor that a Module trains: a leaf with `requires_grad=True`.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.nn import Parameter
    >>> w = Parameter([1.0, 2.0])
    >>> w.requires_grad, w.is_leaf
    (True, True)
    """

    __slots__ = ()  # Tensor uses __slots__; a subclass adding a __dict__ would waste it

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict(strict=False)` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of every layer and model: subclass it, assign layers and Parameters
    as attributes in `__init__`, and write `forward`.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp import nn
    >>> class MLP(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.hidden = nn.Linear(2, 3)
    ...         self.out = nn.Linear(3, 1)
    ...     def forward(self, x):
    ...         return self.out(self.hidden(x).tanh())
    >>> _ = tg.manual_seed(0)
    >>> model = MLP()
    >>> [name for name, _ in model.named_parameters()]
    ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
    >>> model(tg.ones(4, 2)).shape
    (4, 1)
    """

    training: bool
    _parameters: dict[str, Parameter | None]
    _buffers: dict[str, tg.Tensor | None]
    _modules: dict[str, Module | None]
    _non_persistent_buffers: set[str]

    def __init__(self) -> None:
        # object.__setattr__: our own __setattr__ needs these registries to exist
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_non_persistent_buffers", set())

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; every subclass defines it."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------- registration
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() has run: call "
                f"super().__init__() first in {type(self).__name__}.__init__"
            )
        if isinstance(value, Parameter):
            self._register(self._parameters, name, value)
        elif isinstance(value, Module):
            self._register(self._modules, name, value)
        elif name in self._buffers:
            self._buffers[name] = _as_buffer(name, value)
        elif name in self._parameters or name in self._modules:
            kind = "parameter" if name in self._parameters else "submodule"
            if value is not None:
                raise TypeError(
                    f"cannot assign a {type(value).__name__} to {kind} {name!r} of "
                    f"{type(self).__name__} (expected a "
                    f"{'Parameter' if kind == 'parameter' else 'Module'} or None)"
                )
            registry = self._parameters if kind == "parameter" else self._modules
            registry[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: the registered members live here.
        for registry in ("_parameters", "_buffers", "_modules"):
            members = self.__dict__.get(registry)
            if members is not None and name in members:
                return members[name]
        raise AttributeError(
            f"{type(self).__name__!r} object has no attribute {name!r}"
        )

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def _register(self, registry: dict[str, Any], name: str, value: Any) -> None:
        """Put `value` in `registry` (keeping the position of a name already there) and
        drop `name` from the other registries and the instance dict."""
        self.__dict__.pop(name, None)
        for other in (self._parameters, self._buffers, self._modules):
            if other is not registry:
                other.pop(name, None)
        self._non_persistent_buffers.discard(name)
        registry[name] = value

    def _check_new_name(self, name: Any, what: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{what} name must be a str, got {type(name).__name__}")
        if name == "" or "." in name:
            raise KeyError(
                f"{what} name must be non-empty and contain no '.', got {name!r}"
            )
        known = (
            name in self._parameters or name in self._buffers or name in self._modules
        )
        if (name in self.__dict__ or hasattr(type(self), name)) and not known:
            raise KeyError(
                f"attribute {name!r} already exists on {type(self).__name__}"
            )

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register `param` (or None, a declared but absent parameter) under `name`."""
        self._check_new_name(name, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot register a {type(param).__name__} as parameter {name!r} "
                "(expected a Parameter or None)"
            )
        self._register(self._parameters, name, param)

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        """Register non-trainable state (an array or Tensor, or None); it is saved in
        `state_dict` unless `persistent=False`.

        >>> import numpy as np
        >>> from tinygrad_bp import nn
        >>> m = nn.Module()
        >>> m.register_buffer("count", np.zeros(()))
        >>> m.register_buffer("scratch", np.ones(3), persistent=False)
        >>> list(m.state_dict()), [name for name, _ in m.named_buffers()]
        (['count'], ['count', 'scratch'])
        """
        self._check_new_name(name, "buffer")
        if not isinstance(persistent, bool):
            raise TypeError(
                f"register_buffer: persistent must be a bool, got {persistent!r}"
            )
        buffer = _as_buffer(name, tensor)
        self._register(self._buffers, name, buffer)
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register `module` as a child named `name` (for names that are not identifiers)."""
        self._check_new_name(name, "module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(
                f"cannot add a {type(module).__name__} as module {name!r} "
                "(expected a Module or None)"
            )
        self._register(self._modules, name, module)

    # ---------------------------------------------------------------- traversal
    def named_modules(
        self, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module (named `prefix`) and every descendant,
        depth first, each module once unless `remove_duplicate=False`."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in seen:
                    continue
                seen.add(id(module))
            yield name, module
            children = [
                (f"{name}.{child_name}" if name else child_name, child)
                for child_name, child in module._modules.items()
                if child is not None
            ]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        """This module, then every descendant (each once)."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) for each direct child (each once)."""
        seen: set[int] = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        """The direct children (each once)."""
        for _, child in self.named_children():
            yield child

    def _named_members(
        self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool
    ) -> Iterator[tuple[str, tg.Tensor]]:
        modules = (
            self.named_modules(prefix, remove_duplicate)
            if recurse
            else [(prefix, self)]
        )
        seen: set[int] = set()
        for module_name, module in modules:
            for name, member in getattr(module, registry).items():
                if member is None:
                    continue
                if remove_duplicate:
                    if id(member) in seen:
                        continue
                    seen.add(id(member))
                yield (f"{module_name}.{name}" if module_name else name), member

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) in registration order; a shared parameter once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter, each once (hand these to an optimizer)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, tg.Tensor]]:
        """(dotted name, buffer) in registration order; a shared buffer once."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[tg.Tensor]:
        """Every buffer, each once."""
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call `fn` on every submodule (children first, depth first) and then on
        self, as PyTorch; returns self. The usual use is custom initialisation.

        >>> import tinygrad_bp as tg
        >>> from tinygrad_bp import nn
        >>> def init_weights(m):
        ...     if isinstance(m, nn.Linear):
        ...         nn.init.zeros_(m.weight)
        >>> model = nn.Sequential(nn.Linear(2, 3), nn.ReLU()).apply(init_weights)
        >>> model[0].weight.tolist()
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
        """
        if not callable(fn):
            raise TypeError(f"apply: fn must be callable, got {type(fn).__name__}")
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> Module:
        """Set training mode (True) or evaluation mode (False) here and in every
        descendant; returns self."""
        if not isinstance(mode, bool):
            raise ValueError(f"train(mode): mode must be a bool, got {mode!r}")
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> Module:
        """Evaluation mode (`train(False)`): Dropout is the identity, BatchNorm uses its
        running statistics; returns self."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Set every parameter's `.grad` to None, as PyTorch does."""
        for param in self.parameters():
            param.grad = None

    # ------------------------------------------------------------ state dicts
    def _state_items(self) -> Iterator[tuple[str, tg.Tensor]]:
        """(name, tensor) for every parameter and persistent buffer, module by module
        as PyTorch orders them; a member shared by two modules appears under both
        names."""
        for module_name, module in self.named_modules(remove_duplicate=False):
            for registry in (module._parameters, module._buffers):
                for name, member in registry.items():
                    if member is None or (
                        registry is module._buffers
                        and name in module._non_persistent_buffers
                    ):
                        continue
                    yield (f"{module_name}.{name}" if module_name else name), member

    def state_dict(self) -> dict[str, np.ndarray]:
        """Name -> a copy of the array, for every parameter and persistent buffer.

        >>> import tinygrad_bp as tg
        >>> from tinygrad_bp import nn
        >>> {k: v.shape for k, v in nn.Linear(3, 2).state_dict().items()}
        {'weight': (3, 2), 'bias': (2,)}
        """
        return {name: tensor.data.copy() for name, tensor in self._state_items()}

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Copy the values of `state_dict` into this module's parameters and buffers.

        Every name, shape and value is checked before anything is written, so a bad
        `state_dict` raises (KeyError for missing or unexpected names when `strict`,
        ValueError for a wrong shape) and leaves the module unchanged. Values keep
        each tensor's dtype; the Parameter objects stay the same (optimizers holding
        them keep working).

        >>> import tinygrad_bp as tg
        >>> from tinygrad_bp import nn
        >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
        >>> _ = b.load_state_dict(a.state_dict())
        >>> bool((a.weight.data == b.weight.data).all())
        True
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"load_state_dict expects a mapping of names to arrays, got "
                f"{type(state_dict).__name__}"
            )
        targets = dict(self._state_items())
        missing = [name for name in targets if name not in state_dict]
        unexpected = [name for name in state_dict if name not in targets]
        if strict and (missing or unexpected):
            raise KeyError(
                f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}"
            )
        updates = []
        for name, tensor in targets.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            value = value.data if isinstance(value, tg.Tensor) else value
            try:
                array = np.array(value, dtype=tensor.dtype)
            except (TypeError, ValueError) as error:
                raise TypeError(
                    f"load_state_dict: the value for {name!r} cannot be converted to "
                    f"{tensor.dtype}: {error}"
                ) from None
            if array.shape != tensor.shape:
                raise ValueError(
                    f"load_state_dict: shape mismatch for {name!r}: the module has "
                    f"{tensor.shape}, the state_dict has {array.shape}"
                )
            updates.append((tensor, array))
        # A new array rather than a write into the old one: the old one may be saved
        # for a pending backward pass (and is then read-only).
        for tensor, array in updates:
            tensor.data = array
        return IncompatibleKeys(missing, unexpected)

    # -------------------------------------------------------------------- repr
    def extra_repr(self) -> str:
        """The text between the parentheses of this module's repr (its settings)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        children = [
            f"({name}): {module!r}"
            for name, module in self._modules.items()
            if module is not None
        ]
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = ([extra] if extra else []) + children
        body = "\n".join("  " + line.replace("\n", "\n  ") for line in lines)
        return f"{type(self).__name__}(\n{body}\n)"


def _as_buffer(name: str, value: Any) -> tg.Tensor | None:
    """A buffer value as a Tensor that needs no gradient (or None)."""
    if value is None:
        return None
    if isinstance(value, tg.Tensor):
        return value.detach() if value.requires_grad else value
    if isinstance(value, (np.ndarray, np.generic)):
        return tg.Tensor(value)
    raise TypeError(
        f"buffer {name!r} must be a Tensor, a NumPy array or None, got "
        f"{type(value).__name__}"
    )
