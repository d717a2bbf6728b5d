"""The exceptions conveyor raises.

Every error conveyor raises on purpose derives from :class:`ConveyorError`.
Its message is one line that says what is wrong and, where there is one, how
to fix it; the CLI prints it without a traceback.

::

    ConveyorError
    ├── DefinitionError          a step or pipeline is written wrong
    │   └── PipelineGraphError   a cycle, an unknown argument, a type mismatch
    ├── ConfigError              a bad run config, settings or component config
    │   └── NoRepositoryError    no repository here (read-only commands never create one)
    ├── StackError               an unknown or incomplete stack or component
    │   ├── FlavorNotFoundError  a flavor that is not installed (names the pip command)
    │   └── CapabilityError      the stack cannot honour what the pipeline needs
    ├── MaterializerError        no materializer for a type, or a failed save/load
    ├── StoreError               the metadata or artifact store cannot be used
    │   ├── SchemaVersionError   the database has a schema from a newer conveyor
    │   ├── NotFoundError        no such pipeline, run, step or artifact
    │   ├── AmbiguousIdError     an id prefix that more than one record starts with
    │   ├── RunSettledError      the run ended (its driver died, it was stopped) before a step could record
    │   ├── AuthenticationError  a conveyor server refused the credential (none, wrong, expired)
    │   ├── PermissionDeniedError  the credential's role or run scope does not allow the request
    │   └── ServerVersionError   this conveyor and the server speak different API versions
    ├── StepFailedError          a step raised; the run is marked failed
    ├── RunStoppedError          the run was stopped (Ctrl-C, a signal)
    ├── SecretError              a missing secret or key, or a bad key file
    └── AlerterError             an alerter could not deliver a message or get an answer
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlerterError",
    "AmbiguousIdError",
    "AuthenticationError",
    "CapabilityError",
    "ConfigError",
    "ConveyorError",
    "DefinitionError",
    "FlavorNotFoundError",
    "MaterializerError",
    "MetadataError",
    "NoRepositoryError",
    "NotFoundError",
    "PermissionDeniedError",
    "PipelineGraphError",
    "RunSettledError",
    "RunStoppedError",
    "SchemaVersionError",
    "SecretError",
    "ServerVersionError",
    "StackError",
    "StepFailedError",
    "StoreError",
    "config_error",
]


class ConveyorError(Exception):
    """Root of every error conveyor raises on purpose.

    Args:
        message: one line saying what is wrong.
        hint: optional one line saying how to fix it.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} ({hint})")


class DefinitionError(ConveyorError):
    """A step or pipeline definition is invalid (missing annotation, bad parameter)."""


class PipelineGraphError(DefinitionError):
    """The traced pipeline graph is invalid: a cycle, an unknown argument, a type mismatch."""


class ConfigError(ConveyorError):
    """A run config, settings object or component config is invalid."""


class NoRepositoryError(ConfigError):
    """There is no conveyor repository here, and the command does not create one."""


class StackError(ConveyorError):
    """A stack or stack component is unknown, incomplete or misconfigured."""


class FlavorNotFoundError(StackError):
    """A flavor is not installed; the message names the install command."""


class CapabilityError(StackError):
    """The pipeline needs a capability that the stack's components lack."""


class MaterializerError(ConveyorError):
    """No materializer fits a type, or saving/loading an artifact failed."""


class MetadataError(ConfigError):
    """What a step passed to ``log_metadata`` is not small JSON-like data (numbers, strings, small dicts)."""


class StoreError(ConveyorError):
    """The metadata store or artifact store cannot be used."""


class SchemaVersionError(StoreError):
    """The metadata database was written by a newer conveyor."""


class NotFoundError(StoreError):
    """A pipeline, run, step run or artifact does not exist."""


class AmbiguousIdError(StoreError):
    """An id prefix that more than one record's id starts with."""


class RunSettledError(StoreError):
    """The run already has its final status; a late step process may record nothing into it."""


class AuthenticationError(StoreError):
    """A conveyor server refused the credential: none was given, it is wrong, expired or revoked."""


class PermissionDeniedError(StoreError):
    """The credential is valid, but its role (or the run a step token is scoped to) does not allow the request."""


class ServerVersionError(StoreError):
    """This conveyor and the conveyor server speak different API versions."""


class StepFailedError(ConveyorError):
    """A step raised; its traceback is in the step run's logs."""


class RunStoppedError(ConveyorError):
    """The run was stopped before it finished."""


class SecretError(ConveyorError):
    """A secret or one of its keys is missing, or the encryption key is unusable."""


class AlerterError(ConveyorError):
    """An alerter could not deliver a message, or cannot ask a question."""


def config_error(
    exc: Exception, where: str, *, kind: str = "option", known: object = None, error: type[ConveyorError] | None = None
) -> ConveyorError:
    """One line for the first problem pydantic found in a config, settings or parameters.

    Args:
        exc: a ``pydantic.ValidationError``.
        where: what was being validated (``"orchestrator 'af' (airflow)"``).
        kind: what its keys are called (``"option"``, ``"airflow setting"``, ``"key"``).
        known: the model (or names) whose keys are allowed, for an unknown key's hint.
        error: the exception class to return (default :class:`ConfigError`).

    Returns:
        The error to raise (``raise config_error(exc, ...) from None``).
    """
    import difflib

    cls = error or ConfigError
    first = exc.errors()[0]  # type: ignore[attr-defined]
    loc = ".".join(str(p) for p in first["loc"]) or "value"
    if first["type"] == "extra_forbidden":
        fields: Any = getattr(known, "model_fields", None) or known or []
        names = sorted(str(n) for n in fields)
        hint = f"{kind}s are: {', '.join(names) or '(none)'}"
        close = difflib.get_close_matches(str(first["loc"][-1]), names, n=1)
        if close:
            hint = f"did you mean {close[0]!r}? {hint}"
        return cls(f"{where}: unknown {kind} {loc!r}", hint)
    message = str(first["msg"]).removeprefix("Value error, ")
    return cls(f"{where}: {loc}: {message}", (first.get("ctx") or {}).get("hint"))
