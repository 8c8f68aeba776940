"""The codebase's results are named (issue 20 item 3): public functions return small frozen dataclasses, not
positional tuples a caller must unpack in the right order. Known exceptions are listed with their reason and can
only shrink (as tests/test_structure.py's lists)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def product_files() -> list[Path]:
    return sorted(p for pkg in ("hwmodels", "schedules", "spikepipe") for p in (ROOT / pkg).rglob("*.py")
                  if "__pycache__" not in p.parts)


def rel(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


# public functions that return a positional tuple today, and why (issue 20 item 3: results are small frozen
# dataclasses); a new one fails, a fixed one must be struck off, so the list can only shrink
KNOWN_TUPLE_RETURNS = {
    # coordinates and (rows, cols)-style pairs, named by the function
    "hwmodels/energy.py:gemm_sram_words", "hwmodels/interconnect.py:squarest_grid",
    "hwmodels/interconnect.py:Interconnect.dims", "hwmodels/interconnect.py:Interconnect.position",
    "hwmodels/systolic.py:SystolicArray.mapping", "hwmodels/systolic.py:SystolicArray.folds",
    "spikepipe/plots.py:steady_window", "spikepipe/tracer/neurons.py:library_class",
    "spikepipe/tracer/neurons.py:counted_ops",
    # a NAME=VALUE pair as argparse hands it on
    "schedules/options.py:parse_assignment", "spikepipe/cli/cmd_simulate.py:schedule_option",
    # (model, example input): the user's file.py:function contract (docs/contract.md)
    "spikepipe/workload.py:load_model", "spikepipe/zoo.py:build", "spikepipe/train/runner.py:build_model",
    # torch-side step internals (loss, logits, gradients) of the trainers
    "spikepipe/methods/bloctrain.py:BlocTrain.train_step", "spikepipe/methods/checkpoint.py:checkpointed_grads",
    "spikepipe/methods/stepped.py:lif_chunk", "spikepipe/methods/stepped.py:block_chunk",
    "spikepipe/methods/stepped.py:run_chunk", "spikepipe/train/bptt.py:TrainerBase.loss_grads",
    "spikepipe/train/bptt.py:PlainBPTT.grads", "spikepipe/methods/usernet.py:UserNet.run_chunk",
    "spikepipe/train/replay.py:EntryHooks.functional_op",
    # a sort key: (period, total delay, largest lag), compared as a tuple on purpose
    "schedules/spikepipe_phases.py:key",
}


def fixed_tuple(ann: ast.expr | None) -> bool:
    """`tuple[A, B]` (or `tuple[A, B] | None`), not `tuple[A, ...]`."""
    if isinstance(ann, ast.BinOp):
        return fixed_tuple(ann.left) or fixed_tuple(ann.right)
    if not (isinstance(ann, ast.Subscript) and isinstance(ann.value, ast.Name) and ann.value.id == "tuple"):
        return False
    items = ann.slice.elts if isinstance(ann.slice, ast.Tuple) else [ann.slice]
    return len(items) > 1 and not (isinstance(items[-1], ast.Constant) and items[-1].value is Ellipsis)


def tuple_returns() -> set[str]:
    """Public functions and methods annotated to return a fixed-length tuple (`tuple[X, ...]` is a sequence)."""
    out = set()

    def visit(body, path: str, prefix: str = "") -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                if fixed_tuple(node.returns):
                    out.add(f"{path}:{prefix}{node.name}")
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                visit(node.body, path, f"{node.name}.")

    for p in product_files():
        visit(ast.parse(p.read_text()).body, rel(p))
    return out


def test_public_functions_return_named_results():
    parse = lambda text: ast.parse(f"def f() -> {text}: ...").body[0].returns  # noqa: E731
    assert [fixed_tuple(parse(t)) for t in ("tuple[int, int]", "tuple[int, ...]", "tuple[A, tuple[int, ...]]",
                                            "tuple[float, ...] | None", "tuple[A, B] | None", "list[int]")] \
        == [True, False, True, False, True, False]  # the finder, against hand-read annotations
    found = tuple_returns()
    new = sorted(found - KNOWN_TUPLE_RETURNS)
    assert not new, f"public functions returning positional tuples: {new}; return a frozen dataclass"
    fixed = sorted(KNOWN_TUPLE_RETURNS - found)
    assert not fixed, f"{fixed} return named results now: strike them off KNOWN_TUPLE_RETURNS"


def test_evaluation_results_are_named():
    import typing

    from schedules.split import PricedSplit, _priced
    from spikepipe.costs import layer_weight_bytes
    from spikepipe.ir import LayerMemory
    from spikepipe.methods.transforms import AlignedGraph, aligned
    from spikepipe.sim.evaluate import GraphEvaluation, evaluate_graph

    for fn, cls in ((evaluate_graph, GraphEvaluation), (aligned, AlignedGraph), (_priced, PricedSplit),
                    (layer_weight_bytes, LayerMemory)):
        assert typing.get_type_hints(fn)["return"] is cls, fn.__name__
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cls
