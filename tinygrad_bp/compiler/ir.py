"""The intermediate representation of a compiled step: a flat list of small nodes.

A program is what one call of the step did to arrays, in execution order. Every value
lives in a numbered *slot* (an array, or a Python scalar such as a learning rate); a
node reads slots (`Ref`s inside its arguments), defines new slots (`outs`) and may
write into existing ones in place (`writes`). Nothing here knows NumPy's semantics or
the library's: the tracer fills the list, the passes rewrite it, and a code generator
(NumPy text today, ONNX and a GPU array module later) turns it into a program.

Node kinds:

- ``"ufunc"``: ``getattr(target, method)(*args, **kwargs)`` for a NumPy ufunc
  (``method`` is ``__call__``, ``reduce``, ``at``, ...);
- ``"function"``: ``target(*args, **kwargs)`` for a NumPy function (``np.sum``);
- ``"method"``: ``args[0].<target>(*args[1:], **kwargs)`` (``x.reshape(2, 3)``);
- ``"getitem"`` / ``"setitem"``: ``args[0][args[1]]`` (``= args[2]``);
- ``"scalar"``: Python arithmetic ``target(*args)`` on scalars (``1 - beta1``);
- ``"rng"``: ``get_rng().<target>(*args, **kwargs)``, a draw from the one generator;
- ``"guard"``: check that ``target(args[0])`` still equals ``expected`` (a Python
  value the step branched on); the program stops if it does not;
- ``"const"``: the slot holds ``target``, a value known when compiling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SECTIONS = ("checks", "forward", "backward", "update")


@dataclass(frozen=True, slots=True)
class Ref:
    """A read of slot `slot` inside a node's arguments."""

    slot: int


@dataclass(frozen=True, slots=True)
class Node:
    """One array-level operation: what it calls, what it reads, defines and writes.

    >>> Node("ufunc", "tanh", (Ref(0),), outs=(1,)).reads()
    (0,)
    """

    kind: str
    target: Any
    args: tuple = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    outs: tuple[int, ...] = ()
    writes: tuple[int, ...] = ()
    method: str = "__call__"
    comment: str = ""
    section: str = "forward"
    expected: Any = None
    buffer: int | None = None  # set by buffer planning: the arena offset it writes at
    _reads: tuple[int, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        found: list[int] = []
        _collect(self.args, found)
        _collect(self.kwargs, found)
        object.__setattr__(self, "_reads", tuple(found))

    def reads(self) -> tuple[int, ...]:
        """The slots this node reads, in order of appearance (with repeats)."""
        return self._reads


def _collect(value: Any, found: list[int]) -> None:
    kind = type(value)
    if kind is Ref:
        found.append(value.slot)
    elif kind is tuple or kind is list:
        for item in value:
            if type(item) is Ref:
                found.append(item.slot)
            elif type(item) in _CONTAINERS:
                _collect(item, found)
    elif kind is dict:
        for item in value.values():
            _collect(item, found)
    elif kind is slice:
        _collect((value.start, value.stop, value.step), found)


_CONTAINERS = {tuple, list, dict, slice}


@dataclass(slots=True)
class SlotInfo:
    """What the trace saw in a slot: its shape and dtype (arrays) or Python type,
    the slot whose buffer it is a view of (None for a buffer of its own), and a
    readable name (a hint, numbered when written, unless `exact`)."""

    name: str
    shape: tuple[int, ...] | None = None
    dtype: Any = None
    kind: str = "array"  # "array" or "scalar"
    view_of: int | None = None
    strides: tuple[int, ...] | None = None  # the memory layout eager mode gave it
    exact: bool = False  # the name is meant as is (an input, a bound result)


@dataclass
class Graph:
    """A traced program: nodes in execution order, the slots its inputs arrive in,
    the slots (or constants) it hands back, and what each slot held."""

    nodes: list[Node]
    inputs: list[int]
    outputs: list[Any]  # Ref(slot) or a constant
    info: dict[int, SlotInfo] = field(default_factory=dict)
    _owners: dict[int, int] = field(default_factory=dict, repr=False)

    def buffer_of(self, slot: int) -> int:
        """The slot that owns the memory `slot` lives in (itself unless a view)."""
        found = self._owners.get(slot)
        if found is None:
            found, seen = slot, 0
            while seen <= len(self.info):
                view_of = self.info[found].view_of if found in self.info else None
                if view_of is None:
                    break
                found, seen = view_of, seen + 1
            self._owners[slot] = found
        return found

    def pinned(self) -> set[int]:
        """Buffers that outlive the program: inputs and whatever it hands back."""
        escaping = set(self.inputs)
        escaping.update(out.slot for out in self.outputs if isinstance(out, Ref))
        return {self.buffer_of(s) for s in escaping}
