"""Stacks: the set of components a pipeline runs on, and compile-time checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.exceptions import CapabilityError, StackError
from conveyor.stack._flavor import Capability, ComponentType, Flavor, engine_flavors, flavors

if TYPE_CHECKING:
    from conveyor.ir import PipelineIR, Schedule, StackIR
    from conveyor.stores import ArtifactStore, StackRecord


class StackComponent:
    """Base class of stack components.

    Args:
        name: the component's registered name.
        config: its validated config model.
        flavor: the flavor that made it.
    """

    def __init__(self, name: str, config: Any, flavor: Flavor) -> None:
        self.name = name
        self.config = config
        self.flavor = flavor

    def __repr__(self) -> str:
        return f"<{self.flavor.type} {self.name} ({self.flavor.name})>"


class Stack:
    """A stack ready to use: components are created from the IR on first access."""

    def __init__(self, ir: StackIR, *, install: dict[str, str] | None = None) -> None:
        self.ir = ir
        self._components: dict[str, Any] = {}
        #: ``{component type: install command}`` recorded with the components, for a missing flavor's error.
        self.install = dict(install or {})

    @property
    def name(self) -> str:
        """The stack's name."""
        return self.ir.name

    @classmethod
    def from_record(cls, record: StackRecord) -> Stack:
        """Build a stack from a stored stack record."""
        from conveyor.ir import ComponentIR, StackIR

        return cls(
            StackIR(
                name=record.name,
                components={
                    t: ComponentIR(type=t, flavor=c.flavor, name=c.name, config=c.config)
                    for t, c in record.components.items()
                },
            ),
            install={t: c.install for t, c in record.components.items() if c.install},
        )

    def flavor_of(self, component_type: str) -> Flavor:
        """The flavor of a component the stack has (see :meth:`flavor`).

        Raises:
            StackError: the stack has no component of that type.
        """
        found = self.flavor(component_type)
        if found is None:
            raise StackError(
                f"stack {self.name!r} has no {ComponentType.cli_name(component_type)}",
                f"add one: conveyor stack update {self.name} --{ComponentType.cli_name(component_type)} NAME",
            )
        return found

    def flavor(self, component_type: str) -> Flavor | None:
        """The flavor of the component of a type, or None."""
        spec = self.ir.get(component_type)
        if spec is None:
            return None
        return flavors.get(component_type, spec.flavor, install=self.install.get(component_type))

    def component(self, component_type: str) -> Any:
        """The component of a type, created on first use.

        Raises:
            StackError: the stack has no component of that type.
        """
        if component_type not in self._components:
            spec = self.ir.get(component_type)
            if spec is None:
                raise StackError(
                    f"stack {self.name!r} has no {ComponentType.cli_name(component_type)}",
                    f"add one: conveyor stack update {self.name} --{ComponentType.cli_name(component_type)} NAME",
                )
            flavor = flavors.get(component_type, spec.flavor, install=self.install.get(component_type))
            self._components[component_type] = flavor.build(spec.name, dict(spec.config))
        return self._components[component_type]

    @property
    def orchestrator(self) -> Any:
        """The orchestrator component."""
        return self.component(ComponentType.ORCHESTRATOR)

    @property
    def artifact_store(self) -> ArtifactStore:
        """The artifact store."""
        store: ArtifactStore = self.component(ComponentType.ARTIFACT_STORE)
        return store

    # -- compile-time checks ---------------------------------------------------------
    def unread_settings(self, pipeline: PipelineIR) -> dict[str, list[str]]:
        """Settings namespaces the pipeline gives that no component of this stack reads.

        Returns ``{namespace: [where it was given: "pipeline 'p'", "step 's'", ...]}``.
        """
        read: set[str] = set()
        for ctype in self.ir.components:
            read.update(self.flavor_of(ctype).settings_namespaces)
        given: dict[str, list[str]] = {}
        for namespace in pipeline.settings.extra:
            given.setdefault(namespace, []).append(f"pipeline {pipeline.name!r}")
        for step in pipeline.steps:
            for namespace in step.settings.extra:
                given.setdefault(namespace, []).append(f"step {step.id!r}")
        return {ns: where for ns, where in sorted(given.items()) if ns not in read}

    def validate(self, pipeline: PipelineIR, schedule: Schedule | None = None) -> None:
        """Check that this stack can run the pipeline as asked.

        Raises:
            StackError: a required component is missing.
            CapabilityError: the pipeline needs what the stack cannot honour.
        """
        for ctype in ComponentType.REQUIRED:
            if self.ir.get(ctype) is None:
                raise StackError(
                    f"stack {self.name!r} has no {ComponentType.cli_name(ctype)}",
                    f"add one: conveyor stack update {self.name} --{ComponentType.cli_name(ctype)} NAME",
                )
        for ctype in sorted(self.ir.components):
            flavor = self.flavor_of(ctype)
            for needed in flavor.requires:
                if self.ir.get(needed) is None:
                    raise StackError(
                        f"stack {self.name!r} needs a {ComponentType.cli_name(needed)} for its "
                        f"{ComponentType.cli_name(ctype)} {flavor.name!r}",
                        f"add one: conveyor stack update {self.name} --{ComponentType.cli_name(needed)} NAME",
                    )
        orchestrator = self.flavor_of(ComponentType.ORCHESTRATOR)
        caps = orchestrator.capabilities
        where = f"orchestrator flavor {orchestrator.name!r} of stack {self.name!r}"
        if schedule is not None and Capability.SCHEDULES not in caps:
            raise CapabilityError(
                f"the {where} cannot run schedules", f"use an orchestrator with schedules ({engine_flavors()})"
            )
        operator_spec = self.ir.get(ComponentType.STEP_OPERATOR)
        for step in pipeline.steps:
            s = step.settings
            for ctype, wanted in (
                (ComponentType.EXPERIMENT_TRACKER, s.experiment_tracker),
                (ComponentType.DATA_VALIDATOR, s.data_validator),
            ):
                if wanted is not None:
                    self._check_named(step.id, ctype, wanted)
            if s.step_operator is not None:
                if operator_spec is None or s.step_operator not in (operator_spec.name, operator_spec.flavor):
                    raise StackError(
                        f"step {step.id!r} asks for step operator {s.step_operator!r}, which stack {self.name!r} lacks",
                        f"add it: conveyor stack update {self.name} --step-operator NAME",
                    )
                step_caps = self.flavor_of(ComponentType.STEP_OPERATOR).capabilities
            else:
                step_caps = caps
            _check_step(step, step_caps, where)

    def _check_named(self, step_id: str, component_type: str, wanted: str) -> None:
        """A step that names a component (by name or flavor) needs the stack to have it."""
        kind = ComponentType.cli_name(component_type)
        spec = self.ir.get(component_type)
        if spec is None or wanted not in (spec.name, spec.flavor):
            has = f" (it has {spec.name!r}, flavor {spec.flavor})" if spec is not None else ""
            raise StackError(
                f"step {step_id!r} asks for {kind} {wanted!r}, which stack {self.name!r} lacks{has}",
                f"add it: conveyor stack update {self.name} --{kind} NAME",
            )
        self.flavor_of(component_type)  # a flavor that is not installed here is named now, not at run time

    def step_components(self, step: Any) -> list[Any]:
        """The components a step names in its settings (experiment tracker, data validator), created."""
        s = step.settings
        wanted = (
            (ComponentType.EXPERIMENT_TRACKER, s.experiment_tracker),
            (ComponentType.DATA_VALIDATOR, s.data_validator),
        )
        return [self.component(ctype) for ctype, name in wanted if name is not None]


def _check_step(step: Any, caps: frozenset[str], where: str) -> None:
    s = step.settings
    res = s.resources
    if (res.gpu_count or res.gpu_type) and Capability.GPUS not in caps:
        raise CapabilityError(f"step {step.id!r} asks for GPUs, which the {where} cannot provide")
    if (res.cpu is not None or res.memory is not None) and Capability.RESOURCES not in caps:
        raise CapabilityError(f"step {step.id!r} asks for cpu/memory, which the {where} cannot honour")
    if s.retries and Capability.RETRIES not in caps:
        raise CapabilityError(f"step {step.id!r} asks for retries, which the {where} cannot honour")
    if s.timeout is not None and Capability.TIMEOUTS not in caps:
        raise CapabilityError(f"step {step.id!r} asks for a timeout, which the {where} cannot honour")


_config_resolvers: list[Any] = []


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """Resolve ``{{secret.key}}`` references in a component config, then apply registered resolvers.

    Raises:
        SecretError: a referenced secret or key is missing.
    """

    def has_braces(value: Any) -> bool:
        if isinstance(value, str):
            return "{{" in value
        if isinstance(value, dict):
            return any(has_braces(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return any(has_braces(v) for v in value)
        return False

    if has_braces(config):
        # Imported only here: configs without references never load the secrets store.
        from conveyor.secrets import resolve_config as resolve_secrets

        config = resolve_secrets(config)
    for resolver in _config_resolvers:
        config = resolver(config)
    return config


def add_config_resolver(resolver: Any) -> None:
    """Register a function that rewrites component configs before use."""
    _config_resolvers.append(resolver)


_reported: set[tuple[str, str, str]] = set()


def report_unread_settings(pipeline: PipelineIR, stack: Stack) -> None:
    """Say once (per process, stack and pipeline) on stderr which settings the stack ignores.

    ``settings={"docker": ...}`` on a stack without an image builder changes
    nothing; a pipeline that says it expects something the stack does not do
    deserves a line, not silence. Not an error: one pipeline runs on several stacks.
    """
    import sys

    unread = stack.unread_settings(pipeline)
    if not unread:
        return
    key = (stack.name, pipeline.name, repr(sorted(unread.items())))
    if key in _reported:
        return
    _reported.add(key)
    given, readers = [], []
    for namespace, where in unread.items():
        given.append(f"{namespace!r} ({', '.join(where[:3])}{', ...' if len(where) > 3 else ''})")
        found = sorted(
            f"{ComponentType.cli_name(f.type)} {f.name}" for f in flavors.all() if namespace in f.settings_namespaces
        )
        if found:
            readers.append(f"{namespace}: {', '.join(found)}")
    print(
        f"conveyor: warning: stack {stack.name!r} ignores settings {', '.join(given)}: none of its components "
        "reads them" + (f" (read by {'; '.join(readers)})" if readers else ""),
        file=sys.stderr,
    )
