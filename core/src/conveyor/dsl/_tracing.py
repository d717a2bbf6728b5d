"""Recording step calls while a pipeline function runs, and turning them into IR."""

from __future__ import annotations

import json
import math
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import DefinitionError, PipelineGraphError

if TYPE_CHECKING:
    from conveyor.dsl._step import Step

_active: ContextVar[PipelineBuilder | None] = ContextVar("conveyor_pipeline_builder", default=None)


@dataclass
class Invocation:
    """One call of a step inside a pipeline function."""

    id: str
    step: Step
    inputs: dict[str, Any]  # name -> ArtifactInput | ParameterInput
    after: set[str] = field(default_factory=set)

    def handle_after(self, others: tuple[Any, ...]) -> None:
        for other in others:
            self.after.update(_invocation_ids(other))


def _invocation_ids(obj: Any) -> list[str]:
    from conveyor.dsl._step import Step

    if isinstance(obj, (StepOutput, InvocationHandle)):
        return [obj.invocation_id]
    if isinstance(obj, tuple):
        return [i for item in obj for i in _invocation_ids(item)]
    if isinstance(obj, Step):
        builder = current_builder()
        ids = builder.ids_of_step(obj) if builder else []
        if not ids:
            raise PipelineGraphError(f"'.after({obj.name})': step {obj.name!r} was not called before in this pipeline")
        return ids[-1:]
    raise PipelineGraphError(f"'.after()' takes step outputs or steps, not {type(obj).__name__}")


class InvocationHandle:
    """What calling a step with no outputs returns inside a pipeline."""

    def __init__(self, invocation_id: str) -> None:
        self.invocation_id = invocation_id

    def after(self, *others: Any) -> InvocationHandle:
        """Run this step only after ``others`` (steps or their outputs) have finished."""
        _require_builder().invocations[self.invocation_id].handle_after(others)
        return self

    def __repr__(self) -> str:
        return f"<step call {self.invocation_id}>"


class StepOutput(InvocationHandle):
    """A reference to one output of a step call, used to feed other steps."""

    def __init__(self, invocation_id: str, name: str, annotation: Any) -> None:
        super().__init__(invocation_id)
        self.name = name
        self.annotation = annotation

    def __repr__(self) -> str:
        return f"<output {self.invocation_id}.{self.name}>"

    def __bool__(self) -> bool:
        raise PipelineGraphError(
            f"the output {self.invocation_id}.{self.name} has no value while the pipeline is traced",
            "branch inside a step, not in the pipeline function",
        )

    def __iter__(self):
        raise PipelineGraphError(
            f"cannot unpack the single output {self.invocation_id}.{self.name}",
            "declare several outputs as tuple[Annotated[T, 'a'], Annotated[U, 'b']]",
        )


class StepOutputs(tuple):
    """The outputs of a step with several outputs; unpacks like a tuple."""

    def after(self, *others: Any) -> StepOutputs:
        """Run this step only after ``others`` (steps or their outputs) have finished."""
        if self:
            _require_builder().invocations[self[0].invocation_id].handle_after(others)
        return self


def current_builder() -> PipelineBuilder | None:
    """The pipeline being traced in this context, if any."""
    return _active.get()


def _require_builder() -> PipelineBuilder:
    builder = _active.get()
    if builder is None:
        raise PipelineGraphError("'.after()' works only inside a pipeline function")
    return builder


class _TracedInt(int):
    pass


class _TracedFloat(float):
    pass


class _TracedStr(str):
    pass


def mark_pipeline_parameter(value: Any) -> Any:
    """Wrap a pipeline argument so its identity shows where it is passed on.

    Small ints and strings are shared objects in CPython; a subclass instance
    makes the argument distinct from any equal literal in the pipeline body.
    """
    if type(value) is int:
        return _TracedInt(value)
    if type(value) is float:
        return _TracedFloat(value)
    if type(value) is str:
        return _TracedStr(value)
    return value


def to_json_value(value: Any, where: str) -> Any:
    """Convert a parameter to plain JSON data, or raise a DefinitionError saying where."""
    dump = getattr(value, "model_dump", None)
    if dump is not None and callable(dump):
        return dump(mode="json")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DefinitionError(f"{where} is {value!r}, which JSON cannot hold", "pass it through a step output")
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [to_json_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise DefinitionError(f"{where} has a key {k!r} that is not a string", "JSON keys must be strings")
            out[k] = to_json_value(v, f"{where}[{k!r}]")
        return out
    if isinstance(value, (StepOutput, StepOutputs)):
        raise DefinitionError(f"{where} is a step output inside a container", "pass outputs directly as step inputs")
    raise DefinitionError(
        f"{where} is a {type(value).__name__}, which is not JSON-serializable",
        "pass JSON values or pydantic models as parameters, and other objects as step outputs",
    )


class PipelineBuilder:
    """Collects the step calls of one pipeline trace."""

    def __init__(self, parameters: dict[str, Any]) -> None:
        self.parameters = parameters  # name -> marked value
        self.invocations: dict[str, Invocation] = {}
        self._by_step: dict[int, list[str]] = {}
        self._counts: dict[str, int] = {}
        self._token: Token[PipelineBuilder | None] | None = None

    def __enter__(self) -> PipelineBuilder:
        if _active.get() is not None:
            raise PipelineGraphError("a pipeline was called while another pipeline is being traced")
        self._token = _active.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _active.reset(self._token)

    def ids_of_step(self, step: Step) -> list[str]:
        return self._by_step.get(id(step.func), [])

    def new_id(self, step: Step, wanted: str | None) -> str:
        if wanted is not None:
            from conveyor.dsl._step import check_definition_name

            check_definition_name(wanted, "step id")
            if wanted in self.invocations:
                raise PipelineGraphError(f"two step calls use the id {wanted!r}", "give each call its own id")
            return wanted
        base = step.name
        n = self._counts.get(base, 1)
        candidate = base if n == 1 else f"{base}_{n}"
        while candidate in self.invocations:
            n += 1
            candidate = f"{base}_{n}"
        self._counts[base] = n + 1
        return candidate

    def pipeline_parameter_of(self, value: Any) -> str | None:
        for name, marked in self.parameters.items():
            if value is marked:
                return name
        return None

    def add(self, invocation: Invocation) -> None:
        self.invocations[invocation.id] = invocation
        self._by_step.setdefault(id(invocation.step.func), []).append(invocation.id)

    def ordered_ids(self) -> list[str]:
        """Step ids in a topological order that keeps call order where it can."""
        order = list(self.invocations)
        upstream = {}
        for inv_id, inv in self.invocations.items():
            deps = {i.step for i in inv.inputs.values() if getattr(i, "kind", "") == "artifact"} | inv.after
            unknown = deps - self.invocations.keys()
            if unknown:
                raise PipelineGraphError(f"step {inv_id!r} waits for unknown step {sorted(unknown)[0]!r}")
            upstream[inv_id] = deps
        done: list[str] = []
        placed: set[str] = set()
        remaining = order[:]
        while remaining:
            for inv_id in remaining:
                if upstream[inv_id] <= placed:
                    done.append(inv_id)
                    placed.add(inv_id)
                    remaining.remove(inv_id)
                    break
            else:
                raise PipelineGraphError(f"the pipeline has a cycle: {_find_cycle(upstream, remaining)}")
        return done


def _find_cycle(upstream: dict[str, set[str]], nodes: list[str]) -> str:
    start = nodes[0]
    path = [start]
    current = start
    while True:
        nxt = sorted(d for d in upstream[current] if d in nodes)[0]
        if nxt in path:
            cycle = [*path[path.index(nxt) :], nxt]
            return " -> ".join(reversed(cycle))
        path.append(nxt)
        current = nxt


MAX_PARAMETER_BYTES = 1 << 20
"""The largest parameter (as canonical JSON): larger values belong in artifacts."""


def check_parameter(value: Any, where: str) -> Any:
    """Return a JSON parameter value unless it is over :data:`MAX_PARAMETER_BYTES`.

    Raises:
        DefinitionError: the value is too large for a parameter.
    """
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    size = len(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_PARAMETER_BYTES:
        raise DefinitionError(
            f"{where} is {size / (1 << 20):.1f} MiB of JSON; parameters are at most 1 MiB",
            "pass large values as artifacts: return them from a step and take them as its output",
        )
    return value


def json_dumps_check(value: Any) -> None:
    """Raise ValueError when a value cannot be written as strict JSON."""
    json.dumps(value, allow_nan=False)
