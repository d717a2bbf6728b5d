"""The step context: what a running step can ask about itself."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from conveyor.exceptions import ConveyorError, MetadataError

_current: ContextVar[StepContext | None] = ContextVar("conveyor_step_context", default=None)


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
        logged_metadata: what the step logged so far with :meth:`log_metadata`.
    """

    pipeline_name: str
    run_id: str
    run_name: str
    step_id: str
    step_name: str
    attempt: int
    artifact_store: Any = None
    secrets: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    logged_metadata: dict[str, Any] = field(default_factory=dict)

    def log_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Attach ``metadata`` to this step run and to the outputs it returns (see :func:`log_metadata`)."""
        checked = {_key(k): _plain(v, repr(k), 0) for k, v in _mapping(metadata).items()}
        merged = {**self.logged_metadata, **checked}
        size = len(json.dumps(merged))
        if size > MAX_METADATA_BYTES:
            raise MetadataError(
                f"step {self.step_id!r} logged {size} bytes of metadata; at most {MAX_METADATA_BYTES} fit",
                "log numbers and short strings; save large values as step outputs",
            )
        self.logged_metadata.clear()
        self.logged_metadata.update(merged)

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


MAX_METADATA_BYTES = 64 * 1024
"""The most metadata (as JSON) one step run may log: it is stored with every output and shown in comparisons."""

_MAX_DEPTH = 4
_MAX_KEY = 255


def _mapping(value: Any) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise MetadataError(
            f"log_metadata takes a dict, not a {type(value).__name__}", 'log_metadata({"accuracy": 0.93})'
        )
    return value


def _key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY or not key.isprintable():
        raise MetadataError(
            f"metadata key {key!r:.80} is not a name",
            f"keys are printable strings of 1 to {_MAX_KEY} characters",
        )
    return key


def _plain(value: Any, where: str, depth: int) -> Any:
    """``value`` as JSON data: numbers (numpy's too), strings, booleans, None, and small lists and dicts of them."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise MetadataError(f"metadata {where} is not valid text", "log text without lone surrogates") from None
        return str(value)
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise MetadataError(f"metadata {where} is too large a number", "log it as a string")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MetadataError(f"metadata {where} is {value}", "JSON has no NaN or infinity: log None or a string")
        return float(value)
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        return _plain(value.item(), where, depth)  # a numpy scalar (what sklearn's metrics return)
    if depth >= _MAX_DEPTH and isinstance(value, (Mapping, list, tuple)):
        raise MetadataError(f"metadata {where} nests deeper than {_MAX_DEPTH} levels", "log a flatter dict")
    if isinstance(value, Mapping):
        return {_key(k): _plain(v, f"{where}[{k!r}]", depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    raise MetadataError(
        f"metadata {where} is a {type(value).__name__}",
        "log numbers, strings, booleans, None, and lists or dicts of them; save other values as step outputs",
    )


def log_metadata(metadata: Mapping[str, Any]) -> None:
    """Attach ``metadata`` to the running step's run and to the outputs it returns.

    Values are numbers (numpy scalars too), strings, booleans, None, and
    small lists and dicts of them; up to 64 KiB in all per step. Calling it
    again adds keys (a key logged twice keeps the last value). ``conveyor run
    describe`` and ``conveyor artifact describe`` show it; ``conveyor run
    compare`` compares it between runs.

    Raises:
        ConveyorError: called outside a running step.
        MetadataError: a value is not such data, or there is too much of it.
    """
    get_step_context().log_metadata(metadata)


def get_step_context() -> StepContext:
    """The context of the step running in this thread.

    Raises:
        ConveyorError: called outside a running step.
    """
    ctx = _current.get()
    if ctx is None:
        raise ConveyorError("get_step_context() works only inside a running step")
    return ctx


def set_step_context(ctx: StepContext | None) -> Any:
    """Make ``ctx`` the current step context; returns a token for :func:`reset_step_context`."""
    return _current.set(ctx)


def reset_step_context(token: Any) -> None:
    """Undo :func:`set_step_context`."""
    _current.reset(token)
