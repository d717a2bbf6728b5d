"""Flavors: the kinds of stack component, found through entry points.

Every flavor, built-in ones included, is an entry point of the group
``conveyor.flavors`` named ``<component_type>.<flavor>``. Discovery reads
only entry point metadata; a flavor's module is imported when a component of
that flavor is registered or used. A plugin that fails to import is reported
with its distribution's name and skipped.
"""

from __future__ import annotations

import builtins
import sys
from typing import TYPE_CHECKING, Any, ClassVar

from conveyor.constants import FLAVORS_GROUP
from conveyor.exceptions import FlavorNotFoundError, StackError, config_error

if TYPE_CHECKING:
    from pydantic import BaseModel

    from conveyor.stack._component import StackComponent


class ComponentType:
    """The component types a stack is made of (CLI spells them with hyphens)."""

    ORCHESTRATOR = "orchestrator"
    ARTIFACT_STORE = "artifact_store"
    CONTAINER_REGISTRY = "container_registry"
    IMAGE_BUILDER = "image_builder"
    STEP_OPERATOR = "step_operator"
    EXPERIMENT_TRACKER = "experiment_tracker"
    DATA_VALIDATOR = "data_validator"
    MODEL_DEPLOYER = "model_deployer"
    ALERTER = "alerter"

    ALL = (
        ORCHESTRATOR,
        ARTIFACT_STORE,
        CONTAINER_REGISTRY,
        IMAGE_BUILDER,
        STEP_OPERATOR,
        EXPERIMENT_TRACKER,
        DATA_VALIDATOR,
        MODEL_DEPLOYER,
        ALERTER,
    )
    REQUIRED = (ORCHESTRATOR, ARTIFACT_STORE)

    @staticmethod
    def cli_name(component_type: str) -> str:
        """``artifact_store`` → ``artifact-store``."""
        return component_type.replace("_", "-")

    @staticmethod
    def from_cli(name: str) -> str:
        """``artifact-store`` → ``artifact_store`` (checked)."""
        value = name.replace("-", "_")
        if value not in ComponentType.ALL:
            known = ", ".join(ComponentType.cli_name(c) for c in ComponentType.ALL)
            raise StackError(f"unknown component type {name!r}", f"types are: {known}")
        return value


class Capability:
    """What an orchestrator or step operator can honour; checked at compile time."""

    SCHEDULES = "schedules"
    RESOURCES = "resources"
    GPUS = "gpus"
    PARALLELISM = "parallelism"
    RETRIES = "retries"
    TIMEOUTS = "timeouts"
    CONTAINER_IMAGE = "container_image"


IN_A_CLONE = "in the root folder of a conveyor clone"
"""Where every install command conveyor prints is run: distributions install by path, core first."""

GENERIC_INSTALL_HINT = (
    "install the distribution that provides it (in the root folder of a conveyor clone: "
    "pip install ./core ./adapters/NAME, ./integrations/NAME or ./plugins/NAME)"
)
"""What to do about a flavor that is not installed, when no registered component says more."""


class Flavor:
    """Describes one flavor: its config model, capabilities and implementation.

    Subclasses set the class attributes and implement :meth:`implementation`.
    """

    type: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    requires: ClassVar[tuple[str, ...]] = ()
    """Other component types a stack needs when it has a component of this flavor."""
    settings_keys: ClassVar[tuple[str, ...] | None] = None
    """The namespaces of step and pipeline settings components of this flavor read
    (``settings={"docker": ...}``); None means the one named after the flavor. Settings of a
    namespace no component of the stack reads are reported as ignored when a pipeline runs."""
    install: ClassVar[str | None] = None
    """The command that installs the distribution providing this flavor, run from the root of a
    conveyor clone (``"pip install ./core ./adapters/airflow"``): core first, so that pip finds
    ``conveyor`` without a package index that has it.
    Recorded with every component of the flavor, so a machine that lacks it is told what to run."""

    @property
    def settings_namespaces(self) -> tuple[str, ...]:
        """The settings namespaces components of this flavor read (:attr:`settings_keys`, else its name)."""
        return self.settings_keys if self.settings_keys is not None else (self.name,)

    @property
    def config_class(self) -> builtins.type[BaseModel]:
        """The pydantic model of this flavor's config (extra keys forbidden)."""
        raise NotImplementedError

    def implementation(self) -> builtins.type[StackComponent]:
        """The component class (imported only when a component is used)."""
        raise NotImplementedError

    def create(self, name: str, config: Any) -> Any:
        """Make the component from its validated config."""
        return self.implementation()(name, config, self)

    def build(self, name: str, stored_config: dict[str, Any]) -> Any:
        """Make a component from its stored config: ``{{secret.key}}`` references resolved, then validated.

        Raises:
            SecretError: a referenced secret or key is missing.
            ConfigError: the stored config does not fit this flavor (it was written by another version).
        """
        from pydantic import ValidationError

        from conveyor.secrets._fields import SECRETS_RESOLVED
        from conveyor.stack._stack import resolve_config

        resolved = resolve_config(dict(stored_config))
        try:
            # Credentials are references in the store; here they are the values they stand for.
            config = self.config_class.model_validate(resolved, context={SECRETS_RESOLVED: True})
        except ValidationError as exc:
            where = f"{ComponentType.cli_name(self.type)} {name!r} ({self.name})"
            raise config_error(exc, where, known=self.config_class) from None
        return self.create(name, config)

    def options(self) -> list[dict[str, Any]]:
        """The options of this flavor's config, in declaration order.

        Each is ``{"name", "type", "required", "default", "description"}``:
        ``type`` readable (``int``, ``thread|process``, ``str``), ``default``
        a JSON value (None when required or unset), ``description`` the
        field's description or the docstring under it.
        """
        model = self.config_class
        docs = _attribute_docstrings(model)
        out = []
        for name, field in model.model_fields.items():
            required = field.is_required()
            default = None
            if not required:
                default = field.get_default(call_default_factory=True)
                dump = getattr(default, "model_dump", None)
                default = dump(mode="json") if callable(dump) else default
            out.append(
                {
                    "name": name,
                    "type": _type_text(field.annotation),
                    "required": required,
                    "default": default,
                    "description": field.description or docs.get(name, ""),
                }
            )
        return out

    def validate_config(self, config: dict[str, Any], *, component: str) -> dict[str, Any]:
        """Check a config against the model; return it normalized to JSON.

        Raises:
            ConfigError: an unknown key or a bad value, in one line.
        """
        from pydantic import ValidationError

        try:
            model = self.config_class.model_validate(config)
        except ValidationError as exc:
            where = f"{ComponentType.cli_name(self.type)} {component!r} ({self.name})"
            raise config_error(exc, where, known=self.config_class) from None
        return model.model_dump(mode="json", exclude_unset=True)


def _type_text(annotation: Any) -> str:
    """A short spelling of an option's type: ``int``, ``str``, ``thread|process``, ``list[str]``."""
    import types
    import typing

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin is typing.Literal:
        return "|".join(str(a) for a in args)
    if origin is typing.Union or origin is types.UnionType:
        kept = [a for a in args if a is not type(None)]
        return "|".join(_type_text(a) for a in kept) if kept else "none"
    if origin is not None:
        inner = ", ".join(_type_text(a) for a in args if a is not Ellipsis)
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{inner}]" if inner else name
    if annotation is typing.Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


def _attribute_docstrings(model: type) -> dict[str, str]:
    """``{field: the first line of the string under it}`` of a class and its bases (source permitting)."""
    import ast
    import inspect
    import itertools
    import textwrap

    docs: dict[str, str] = {}
    for klass in reversed(model.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def parse_settings(model: type[BaseModel], data: Any, *, namespace: str, where: str) -> Any:
    """Validate one namespace of step or pipeline settings (``{"airflow": {...}}``) against its model.

    Raises:
        ConfigError: an unknown key (naming the known ones) or a bad value, in one line.
    """
    from pydantic import ValidationError

    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        raise config_error(exc, where, kind=f"{namespace} setting", known=model) from None


def merge_settings(pipeline: Any, step: Any) -> dict[str, Any]:
    """The one rule for a step's namespaced settings over its pipeline's, on every engine.

    A setting the step gives replaces the pipeline's; a setting that is a
    mapping on both sides (node selectors, labels, environments) is merged key
    by key, the step's keys winning; a setting the step leaves out, or sets to
    ``None``, keeps the pipeline's.
    """
    out = dict(pipeline or {})
    for key, value in (step or {}).items():
        if value is None:
            continue
        base = out.get(key)
        out[key] = {**base, **value} if isinstance(value, dict) and isinstance(base, dict) else value
    return out


def step_settings(model: type[BaseModel], namespace: str, pipeline_extra: Any, step_extra: Any, *, where: str) -> Any:
    """A step's validated settings of one namespace, merged over its pipeline's (:func:`merge_settings`).

    Only the pipeline settings the step model knows are inherited (a pipeline
    may have settings of its own, such as a DAG's description).

    Args:
        pipeline_extra: the pipeline's namespaced settings (``pipeline.settings.extra``).
        step_extra: the step's (``step.settings.extra``).
        where: the step, for errors (``"step 'train'"``).

    Raises:
        ConfigError: an unknown key or a bad value, in one line.
    """
    own = (step_extra or {}).get(namespace) or {}
    parse_settings(model, own, namespace=namespace, where=where)  # errors name the step's own setting
    inherited = {k: v for k, v in ((pipeline_extra or {}).get(namespace) or {}).items() if k in model.model_fields}
    return parse_settings(model, merge_settings(inherited, own), namespace=namespace, where=where)


class FlavorRegistry:
    """Entry-point discovery of flavors, lazy and isolated."""

    def __init__(self) -> None:
        self._entry_points: dict[str, Any] | None = None
        self._loaded: dict[str, Flavor] = {}
        self.errors: dict[str, str] = {}

    def _discover(self) -> dict[str, Any]:
        if self._entry_points is None:
            from importlib.metadata import entry_points

            self._entry_points = {ep.name: ep for ep in entry_points(group=FLAVORS_GROUP)}
        return self._entry_points

    def names(self, component_type: str | None = None) -> list[str]:
        """Installed flavor names (``type.flavor``), optionally of one type."""
        keys = sorted(self._discover())
        if component_type is not None:
            keys = [k for k in keys if k.split(".", 1)[0] == component_type]
        return keys

    def get(self, component_type: str, flavor: str, *, install: str | None = None) -> Flavor:
        """Load a flavor.

        Args:
            install: the install command recorded with a component of this flavor, for the error.

        Raises:
            FlavorNotFoundError: not installed; names the install command when one is known.
        """
        key = f"{component_type}.{flavor}"
        if key in self._loaded:
            return self._loaded[key]
        ep = self._discover().get(key)
        kind = ComponentType.cli_name(component_type)
        if ep is None:
            if install:
                raise FlavorNotFoundError(
                    f"the {kind} flavor {flavor!r} is not installed here", f"run {IN_A_CLONE}: {install}"
                )
            known = ", ".join(k.split(".", 1)[1] for k in self.names(component_type)) or "(none)"
            raise FlavorNotFoundError(
                f"no {kind} flavor named {flavor!r} is installed (installed {kind} flavors: {known})",
                GENERIC_INSTALL_HINT,
            )
        try:
            cls = ep.load()
            instance = cls()
        except Exception as exc:  # a broken plugin must not break the core
            dist = getattr(getattr(ep, "dist", None), "name", "its distribution")
            self.errors[key] = f"{dist}: {exc}"
            print(f"conveyor: skipped flavor plugin {key} from {dist}: {type(exc).__name__}: {exc}", file=sys.stderr)
            raise FlavorNotFoundError(
                f"the {kind} flavor {flavor!r} from {dist} failed to import: {exc}",
                f"reinstall it: pip install --force-reinstall {dist}",
            ) from None
        if not isinstance(instance, Flavor) or instance.type != component_type or instance.name != flavor:
            raise StackError(f"entry point {key} does not point at a {kind} flavor named {flavor!r}")
        self._loaded[key] = instance
        return instance

    def all(self, component_type: str | None = None) -> list[Flavor]:
        """Every flavor that loads (broken ones are reported on stderr and skipped)."""
        out = []
        for key in self.names(component_type):
            ctype, name = key.split(".", 1)
            try:
                out.append(self.get(ctype, name))
            except StackError:
                continue
        return out


flavors = FlavorRegistry()


def engine_flavors() -> str:
    """The installed orchestrator flavors that run on an engine (they take schedules), for hints."""
    names = [f.name for f in flavors.all(ComponentType.ORCHESTRATOR) if Capability.SCHEDULES in f.capabilities]
    return "installed: " + ", ".join(names) if names else f"none is installed: {GENERIC_INSTALL_HINT}"
