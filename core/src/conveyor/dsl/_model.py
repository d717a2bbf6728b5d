"""``Model``: what runs create versions of, and how a step takes a model version as its input."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

from conveyor.exceptions import DefinitionError

if TYPE_CHECKING:
    from conveyor.ir import ModelInput, ModelIR


class Model:
    """A model: the name its versions share, or one version of it.

    Given to ``@pipeline(model=...)``, each run creates a new numbered
    version of the model and links its steps, their artifacts (cached ones
    too) and the metadata they log to it; ``version="2026-q4"`` attaches the
    runs to the version of that name instead (created by the first run), and
    a number, ``"latest"`` or an alias attaches them to that existing version.
    Given to ``@step(model=...)``, each run of that step creates its own version.

    Passed to a step as an input, it loads an artifact of the version it
    names (``"latest"`` by default; an alias is read when the step runs): the
    artifact named like the input, else the only one of the input's type;
    ``Model(...).artifact("name")`` names it. The string ``"churn@production"``
    (or ``"churn@production/model"``) does the same for an input that does not
    take text, and can be a pipeline parameter.

    Args:
        name: the model's name (the naming rule of pipelines and steps).
        version: a number, ``"latest"``, an alias or a version name.
        description: what the model is for.
        tags: labels to find it by.
        license: the license of the model.

    Raises:
        DefinitionError: a name, version, tag or license the rules refuse.
    """

    def __init__(
        self,
        name: str,
        *,
        version: str | int | None = None,
        description: str | None = None,
        tags: Iterable[str] = (),
        license: str | None = None,
    ) -> None:
        from conveyor.ir import ModelIR

        if isinstance(version, bool) or not (version is None or isinstance(version, (str, int))):
            raise DefinitionError(f"Model version must be a number or a string, not {type(version).__name__}")
        if isinstance(tags, str) or not all(isinstance(tag, str) for tag in tags):
            raise DefinitionError("Model tags must be a list of strings", 'write tags=["tabular"]')
        try:
            self._ir = ModelIR(
                name=name,
                version=None if version is None else str(version),
                description=description,
                tags=tuple(tags),
                license=license,
            )
        except ValueError as exc:  # pydantic's ValidationError: one line, the first problem
            raise DefinitionError(_first_problem(exc)) from None

    name = property(lambda self: self._ir.name, doc="The model's name.")
    version = property(lambda self: self._ir.version, doc="The version reference, or None (a new version per run).")
    description = property(lambda self: self._ir.description, doc="What the model is for.")
    tags = property(lambda self: self._ir.tags, doc="Labels of the model.")
    license = property(lambda self: self._ir.license, doc="The model's license.")

    @property
    def reference(self) -> str:
        """``MODEL@VERSION`` (the version is ``latest`` when none is given)."""
        from conveyor.ir import LATEST

        return f"{self.name}@{self.version or LATEST}"

    def artifact(self, name: str) -> ModelArtifact:
        """A reference to the artifact ``name`` of this version, to pass to a step as its input."""
        from conveyor.ir import artifact_name_ok, shown

        if not artifact_name_ok(name):
            raise DefinitionError(f"artifact name {shown(name)} is empty, too long or holds a control character")
        return ModelArtifact(self, name)

    def to_ir(self) -> ModelIR:
        """The model as the IR carries it."""
        return self._ir

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other._ir == self._ir

    def __hash__(self) -> int:
        return hash(self._ir)

    def __repr__(self) -> str:
        return f"Model({self.name!r}" + (f", version={self.version!r})" if self.version else ")")


class ModelArtifact:
    """One named artifact of a model version, as a step input (``Model(...).artifact("model")``)."""

    def __init__(self, model: Model, artifact: str) -> None:
        self.model = model
        self.artifact = artifact

    @property
    def reference(self) -> str:
        """``MODEL@VERSION/ARTIFACT``."""
        return f"{self.model.reference}/{self.artifact}"

    def __repr__(self) -> str:
        return f"{self.model!r}.artifact({self.artifact!r})"


def _first_problem(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return str(first["msg"]).removeprefix("Value error, ")
    return str(exc).splitlines()[0]


def model_ir_of(value: Any, where: str) -> ModelIR | None:
    """The IR of a ``model=`` option: a :class:`Model`, the IR itself, or None.

    Raises:
        DefinitionError: anything else.
    """
    from conveyor.ir import ModelIR

    if value is None or isinstance(value, ModelIR):
        return value
    if isinstance(value, Model):
        return value.to_ir()
    raise DefinitionError(f"{where} must be a conveyor.Model, not {type(value).__name__}", 'write Model(name="...")')


def takes_text(annotation: Any) -> bool:
    """Whether an input annotated so takes a string (then a ``"model@version"`` string stays a string)."""
    base = annotation
    if get_origin(base) is typing.Annotated:
        base = get_args(base)[0]
    if base is Any or isinstance(base, typing.TypeVar):
        return True
    origin = get_origin(base)
    if origin is Union or origin is types.UnionType:
        return any(takes_text(member) for member in get_args(base))
    if origin is typing.Literal:
        return any(isinstance(arg, str) for arg in get_args(base))
    cls = origin or base
    return isinstance(cls, type) and issubclass(str, cls)


def model_input(value: Any, annotation: Any, where: str, pipeline_parameter: str | None) -> ModelInput | None:
    """The step input a value stands for when it references a model version, else None.

    A :class:`Model` or :class:`ModelArtifact` always does; a string does when
    it has an ``@`` and the input does not take text.

    Raises:
        DefinitionError: a string with an ``@`` that is not a valid reference.
    """
    from conveyor.ir import LATEST, ModelInput, parse_model_reference, shown

    if isinstance(value, Model):
        return ModelInput(model=value.name, version=value.version or LATEST, pipeline_parameter=pipeline_parameter)
    if isinstance(value, ModelArtifact):
        return ModelInput(
            model=value.model.name,
            version=value.model.version or LATEST,
            artifact=value.artifact,
            pipeline_parameter=pipeline_parameter,
        )
    if not isinstance(value, str) or "@" not in value or takes_text(annotation):
        return None
    try:
        parsed = parse_model_reference(value)
    except ValueError as exc:
        raise DefinitionError(
            f"{where} is {shown(value)}, which is not a model reference: {exc}",
            "write MODEL@VERSION or MODEL@VERSION/ARTIFACT, e.g. 'churn@production'",
        ) from None
    assert parsed is not None
    model, version, artifact = parsed
    return ModelInput(model=model, version=version, artifact=artifact, pipeline_parameter=pipeline_parameter)
