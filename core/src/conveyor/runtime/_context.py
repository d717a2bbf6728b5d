"""The step context: what a running step can ask about itself, and the metadata it logs."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ConveyorError, MetadataError

if TYPE_CHECKING:
    from conveyor.stores import ModelVersionRecord

_current: ContextVar[StepContext | None] = ContextVar("conveyor_step_context", default=None)

MAX_METADATA_BYTES = 64 * 1024
"""How much a step may log with :func:`log_metadata`, as JSON: metadata is for numbers and small facts."""

_MAX_KEY = 255
_MAX_DEPTH = 8


@dataclass(frozen=True)
class StepContext:
    """Facts about the step that is running, for code inside a step.

    Attributes:
        pipeline_name: the pipeline's name.
        run_id: id of the pipeline run.
        run_name: name of the pipeline run.
        step_id: the invocation id (``split_2``).
        step_name: the step's name.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        artifact_store: the run's artifact store.
        secrets: ``{secret name: {key: value}}`` of the secrets the step asked for.
        model_version: the model version the step's run works in (``.model_name``,
            ``.number``), or None when its pipeline and the step have no model.
        code_hash: the hash of the step's code.
        code_commit: the commit of the code the run was started from, when known.
        stack: the run's :class:`~conveyor.stack.Stack` (the stack the step runs on).
        logged_metadata: what the step logged so far with :meth:`log_metadata`; recorded with the step when it ends.
    """

    pipeline_name: str
    run_id: str
    run_name: str
    step_id: str
    step_name: str
    attempt: int
    artifact_store: Any = None
    secrets: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    model_version: ModelVersionRecord | None = None
    logged_metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    code_hash: str = ""
    code_commit: str | None = None
    stack: Any = field(default=None, repr=False)
    link_recorder: Any = field(default=None, repr=False)

    def _component(self, component_type: str) -> Any:
        from conveyor.exceptions import StackError

        if self.stack is None:
            raise StackError(f"step {self.step_id!r} runs without a stack")
        return self.stack.component(component_type)

    @property
    def experiment_tracker(self) -> Any:
        """The stack's experiment tracker.

        Raises:
            StackError: the stack has none.
        """
        return self._component("experiment_tracker")

    @property
    def data_validator(self) -> Any:
        """The stack's data validator.

        Raises:
            StackError: the stack has none.
        """
        return self._component("data_validator")

    @property
    def model_deployer(self) -> Any:
        """The stack's model deployer.

        Raises:
            StackError: the stack has none.
        """
        return self._component("model_deployer")

    @property
    def alerter(self) -> Any:
        """The alerter of the stack the step runs on (``post(message)``, ``ask(question)``).

        Raises:
            StackError: the stack has no alerter.
        """
        from conveyor.stack import ComponentType

        if self.stack is None:
            from conveyor.exceptions import StackError

            raise StackError(f"step {self.step_id!r} runs without a stack, so it has no alerter")
        return self.stack.component(ComponentType.ALERTER)

    def add_link(self, label: str, url: str) -> None:
        """Record a link of this step's run to another system (``conveyor run describe`` shows it).

        Args:
            label: what the link is (``"mlflow"``); shown with the step's id.
            url: where it points.
        """
        if self.link_recorder is not None:
            self.link_recorder(f"{self.step_id}: {label}", url)

    def get_secret(self, name: str) -> dict[str, str]:
        """The values of a secret the step declared with ``@step(secrets=[...])``."""
        from conveyor.exceptions import SecretError

        try:
            return self.secrets[name]
        except KeyError:
            raise SecretError(
                f"step {self.step_id!r} did not ask for secret {name!r}",
                f"declare it: @step(secrets=[{name!r}])",
            ) from None

    def log_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Attach ``metadata`` to this step run, its outputs and its model version (see :func:`log_metadata`)."""
        import json

        if not isinstance(metadata, Mapping):
            raise MetadataError(
                f"log_metadata() takes a dict of values, not a {type(metadata).__name__}",
                'write log_metadata({"accuracy": 0.93})',
            )
        clean = {_check_key(k): _plain(v, f"metadata {k!r}", 0) for k, v in metadata.items()}
        merged = {**self.logged_metadata, **clean}
        size = len(json.dumps(merged, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_METADATA_BYTES:
            raise MetadataError(
                f"the metadata logged come to {size} bytes; at most {MAX_METADATA_BYTES} fit",
                "log numbers and small facts; return large values as step outputs",
            )
        self.logged_metadata.clear()
        self.logged_metadata.update(merged)


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY or not key.isprintable():
        from conveyor.ir import shown

        raise MetadataError(
            f"metadata key {shown(key)} is not a name",
            f"keys are strings of 1 to {_MAX_KEY} printable characters",
        )
    return key


def _check_text(text: str, where: str) -> None:
    """Refuse text no database stores: PostgreSQL refuses NUL characters, every driver lone surrogates."""
    problem = None
    if "\x00" in text:
        problem = "holds a NUL character"
    else:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            problem = "is not valid Unicode (it holds a lone surrogate)"
    if problem is not None:
        raise MetadataError(f"{where} {problem}, which no metadata store keeps", "log printable text")


def _plain(value: Any, where: str, depth: int) -> Any:
    """``value`` as plain JSON data (numpy scalars become numbers; strings have secret values masked)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        from conveyor.secrets import redact

        _check_text(value, where)
        return redact(value)  # a secret value a step logs must not reach the store
    if isinstance(value, numbers.Integral):
        integer = int(value)
        if not -(2**63) <= integer < 2**63:  # no store's JSON keeps a wider integer exactly
            raise MetadataError(f"{where} is too large a number for a 64-bit integer", "log it as a string")
        return integer
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise MetadataError(
                f"{where} is {number}, which JSON cannot hold", "JSON has no NaN or infinity: log None or a string"
            )
        return number
    if depth < _MAX_DEPTH and isinstance(value, Mapping):
        from conveyor.ir import shown

        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise MetadataError(f"{where} has a key {shown(k)} that is not a string", "JSON keys are strings")
            _check_text(k, f"{where} key")
            out[k] = _plain(v, f"{where}[{k!r}]", depth + 1)
        return out
    if depth < _MAX_DEPTH and isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():  # a numpy scalar (np.bool_, np.float32, ...)
        return _plain(item(), where, depth)
    kind = (
        "nested deeper than 8 levels"
        if isinstance(value, (Mapping, list, tuple))
        else f"of type {type(value).__name__}"
    )
    raise MetadataError(
        f"{where} is {kind}; metadata are numbers, strings, booleans and small dicts or lists of them",
        "return rich values as step outputs",
    )


def get_step_context() -> StepContext:
    """The context of the step running in this thread.

    Raises:
        ConveyorError: called outside a running step.
    """
    ctx = _current.get()
    if ctx is None:
        raise ConveyorError("get_step_context() works only inside a running step")
    return ctx


def log_metadata(metadata: Mapping[str, Any]) -> None:
    """Attach numbers, strings and small dicts to the running step.

    They are recorded with the step run when it ends, merged into the
    metadata of the artifacts it returns, and linked to the model version
    its run works in. Later calls add keys and replace those logged before.
    Nothing reaches the store before the step ends. ``conveyor run describe``
    and ``conveyor artifact describe`` show them; ``conveyor run compare``
    compares them between runs.

    Args:
        metadata: ``{key: value}``: numbers (numpy scalars too), strings,
            booleans, None, and dicts or lists of them; at most 64 KiB as JSON in all.

    Raises:
        ConveyorError: called outside a running step.
        MetadataError: a value that is not plain data, not finite, wider than
            64 bits, text no store keeps, or too much of it.
    """
    ctx = _current.get()
    if ctx is None:
        raise ConveyorError("log_metadata() works only inside a running step", "call it from a @step function")
    ctx.log_metadata(metadata)


def set_step_context(ctx: StepContext | None) -> Any:
    """Make ``ctx`` the current step context; returns a token for :func:`reset_step_context`."""
    return _current.set(ctx)


def reset_step_context(token: Any) -> None:
    """Undo :func:`set_step_context`."""
    _current.reset(token)
