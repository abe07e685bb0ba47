"""Look at a recorded graph: Graphviz DOT text, and pictures where Graphviz exists.

`to_dot(t)` walks back from ``t`` along ``grad_fn.inputs`` with an explicit stack (no
recursion, so a 100,000-op chain is fine) and writes one node per Tensor:

- an op's result is an ellipse labelled with the op name, the output shape and dtype;
- a leaf is a box: filled light blue when it requires grad (what ``backward`` fills
  ``.grad`` of), grey when it does not (data, targets, scalar constants, whose value is
  shown when they hold one element);
- the tensor you asked about has a double outline;
- tensors named in ``params`` (a Module's ``named_parameters()`` or a dict) carry the name.

A graph released by ``backward()`` (without ``retain_graph=True``) no longer knows its
inputs: the walk stops at such a node, draws it dashed and says so in its label,
rather than raising, so you can still look at what is left.

`draw(t, path)` renders the same text with the ``graphviz`` Python package and the
Graphviz ``dot`` program (``pip install 'tinygrad_bp[demo]'`` and, for example,
``apt-get install graphviz``); ``.dot``/``.gv`` paths need neither.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tinygrad_bp as tg

__all__ = ["draw", "to_dot"]

_INSTALL_HINT = (
    "install the Python package with pip install 'tinygrad_bp[demo]' and the Graphviz "
    "'dot' program (https://graphviz.org/download/, e.g. apt-get install graphviz or "
    "brew install graphviz)"
)
_RELEASED_NOTE = "inputs released by backward()\\n(use retain_graph=True to keep them)"
_TEXT_FORMATS = ("dot", "gv")


def to_dot(t: tg.Tensor, params: Any = None) -> str:
    """Graphviz DOT text of the graph that produced ``t``: ops, shapes, dtypes, leaves.

    ``params`` (a Module, or a dict name -> Tensor) names the tensors it holds. Node
    ids ``n0, n1, ...`` follow a post-order walk, so inputs come before the ops that use
    them and the same graph always gives the same text.

    >>> import tinygrad_bp as tg
    >>> from tinygrad_bp.viz import to_dot
    >>> w = tg.tensor([[1.0], [2.0]], requires_grad=True)
    >>> loss = (tg.ones(3, 2) @ w).sum()
    >>> print(to_dot(loss, params={"w": w}))
    digraph tinygrad_bp {
      node [fontname="Helvetica", fontsize=10];
      n0 [label="leaf\\n(3, 2) float32", shape=box, style=filled, fillcolor="#e8e8e8"];
      n1 [label="w\\n(2, 1) float32", shape=box, style=filled, fillcolor="#9ecae1"];
      n2 [label="MatMul\\n(3, 1) float32"];
      n0 -> n2;
      n1 -> n2;
      n3 [label="Sum\\n() float32", peripheries=2];
      n2 -> n3;
    }
    """
    if not isinstance(t, tg.Tensor):
        raise TypeError(f"to_dot: t must be a Tensor, got {type(t).__name__}")
    names = _param_names(params)
    ids: dict[int, str] = {}
    # str(dtype) is slow enough to dominate long chains; there are few distinct ones.
    dtype_names: dict[Any, str] = {}
    lines = ["digraph tinygrad_bp {", '  node [fontname="Helvetica", fontsize=10];']
    # Post-order with an explicit stack: (tensor, False) asks to visit its inputs,
    # (tensor, True) writes it once they all have ids.
    stack: list[tuple[tg.Tensor, bool]] = [(t, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            ids[id(node)] = f"n{len(ids)}"
            dtype = node.dtype
            if dtype not in dtype_names:
                dtype_names[dtype] = str(dtype)
            about = f"{node.shape} {dtype_names[dtype]}"
            lines.append(_node_line(node, about, ids, names, is_root=node is t))
            continue
        if id(node) in ids:
            continue
        stack.append((node, True))
        for source in reversed(_inputs(node)):
            if id(source) not in ids:
                stack.append((source, False))
    lines.append("}")
    return "\n".join(lines)


def draw(
    t: tg.Tensor,
    path: str | os.PathLike,
    params: Any = None,
    format: str | None = None,
) -> Path:
    """Render `to_dot(t, params)` to ``path``; the format comes from its suffix.

    ``.dot`` and ``.gv`` write the DOT text itself and need nothing else; any other
    format Graphviz knows (``svg``, ``png``, ``pdf``, ...) needs the ``graphviz``
    package (else `ImportError`) and the ``dot`` program (else `RuntimeError`), both
    naming what to install. ``format`` overrides the suffix. Returns the path written.

    >>> import os, tempfile, tinygrad_bp as tg
    >>> from tinygrad_bp.viz import draw
    >>> x = tg.tensor([1.0, 2.0], requires_grad=True)
    >>> path = draw((x * x).sum(), os.path.join(tempfile.mkdtemp(), "graph.dot"))
    >>> path.read_text().count("->")
    3
    """
    path = Path(path)
    fmt = (format if format is not None else path.suffix.lstrip(".")).lower()
    if not fmt:
        raise ValueError(
            f"draw: cannot tell the format of {str(path)!r}; give the path a suffix "
            f"(.svg, .png, .dot) or pass format="
        )
    source = to_dot(t, params)
    if fmt in _TEXT_FORMATS:
        path.write_text(source + "\n", encoding="utf-8")
        return path
    try:
        import graphviz
    except ImportError as error:
        raise ImportError(
            f"draw: rendering {fmt!r} needs Graphviz: {_INSTALL_HINT}; "
            f"or save a .dot file and render it elsewhere"
        ) from error
    if fmt not in graphviz.FORMATS:
        raise ValueError(
            f"draw: unknown format {fmt!r}; Graphviz knows {sorted(graphviz.FORMATS)}"
        )
    try:
        picture = graphviz.Source(source).pipe(format=fmt)
    except graphviz.ExecutableNotFound as error:
        raise RuntimeError(
            f"draw: the Graphviz 'dot' program was not found on PATH: {_INSTALL_HINT}"
        ) from error
    path.write_bytes(picture)
    return path


def _param_names(params: Any) -> dict[int, str]:
    """id(tensor) -> name, from a Module's named_parameters() or a name -> Tensor dict."""
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):
        items = params.named_parameters()
    elif isinstance(params, Mapping):
        items = params.items()
    else:
        raise TypeError(
            f"to_dot: params must be a Module or a dict of name -> Tensor, "
            f"got {type(params).__name__}"
        )
    names: dict[int, str] = {}
    for name, tensor in items:
        if not isinstance(tensor, tg.Tensor):
            raise TypeError(
                f"to_dot: params[{name!r}] must be a Tensor, got {type(tensor).__name__}"
            )
        names.setdefault(id(tensor), str(name))
    return names


def _inputs(t: tg.Tensor) -> tuple[tg.Tensor, ...]:
    """The tensors ``t`` was computed from; none for leaves and released nodes."""
    if t.grad_fn is None or t.grad_fn.inputs is None:
        return ()
    return t.grad_fn.inputs


def _node_line(
    t: tg.Tensor, about: str, ids: dict[int, str], names: dict[int, str], is_root: bool
) -> str:
    """The DOT statements for ``t`` (``about``: shape and dtype): node, then input edges."""
    node = ids[id(t)]
    name = names.get(id(t))
    fn = t.grad_fn
    edges = ""
    if fn is None:
        title = name if name is not None else "leaf"
        if not t.requires_grad and t.data.size == 1 and name is None:
            title = f"constant {t.data.item():.6g}"
        colour = "#9ecae1" if t.requires_grad else "#e8e8e8"
        label = f"{_escape(title)}\\n{about}"
        style = f'shape=box, style=filled, fillcolor="{colour}"'
    else:
        title = fn.name if name is None else f"{name} = {fn.name}"
        label = f"{_escape(title)}\\n{about}"
        style = ""
        if fn.inputs is None:
            label += f"\\n{_RELEASED_NOTE}"
            style = "style=dashed"
        edges = "".join(f"\n  {ids[id(source)]} -> {node};" for source in _inputs(t))
    attributes = f'label="{label}"' + (f", {style}" if style else "")
    if is_root:
        attributes += ", peripheries=2"
    return f"  {node} [{attributes}];{edges}"


def _escape(text: str) -> str:
    """Text safe inside a double-quoted DOT string."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
