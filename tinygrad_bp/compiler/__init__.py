"""The compiled mode: capture a step once, replay it as a flat NumPy program.

One module per stage, each importing only the ones before it: `ir` (nodes and
slots), `trace` (run the step with a recorder switched on), `passes` (dead code,
constant folding, buffer planning), `codegen_numpy` (nodes to Python text to one
function) and `api` (`compile`: guards, the program cache, the eager fallback).
`codegen_onnx` is a second code generator over the same nodes (ONNX graphs, for
`tinygrad_bp.onnx.export`), importing only `ir` and `passes`.
The engine and the ops import none of them.
"""

from .api import CompiledFunction, compile

__all__ = ["CompiledFunction", "compile"]
