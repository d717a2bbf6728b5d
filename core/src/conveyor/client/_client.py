"""``Client``: read back pipelines, runs, steps and artifacts; manage stacks."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import NotFoundError, StackError

if TYPE_CHECKING:
    from conveyor._repository import Repository
    from conveyor.ir import Deployment
    from conveyor.secrets import Secret, SecretInfo, SecretStore
    from conveyor.stores import (
        ArtifactRecord,
        ArtifactStore,
        ComponentRecord,
        MetadataStore,
        PipelineRecord,
        RunRecord,
        StackRecord,
        StepRunRecord,
    )


class ArtifactView:
    """One artifact version: where it is, what it is, who made and used it."""

    def __init__(self, client: Client, record: ArtifactRecord) -> None:
        self._client = client
        self.record = record

    id = property(lambda self: self.record.id)
    name = property(lambda self: self.record.name)
    version = property(lambda self: self.record.version)
    uri = property(lambda self: self.record.uri)
    data_type = property(lambda self: self.record.data_type)
    materializer = property(lambda self: self.record.materializer)
    content_hash = property(lambda self: self.record.content_hash)
    metadata = property(lambda self: self.record.metadata)
    created = property(lambda self: self.record.created)

    @property
    def visualizations(self) -> dict[str, str]:
        """``{uri: kind}`` of the human views stored beside the artifact (each inside its folder).

        Raises:
            StoreError: the record names a view outside the artifact's folder.
        """
        store = self._client.artifact_store_for(self.uri)
        out = {}
        for rel, kind in self.record.visualizations.items():
            parts = str(rel).replace("\\", "/").split("/")
            out[store.join(self.uri, *parts)] = kind  # one segment at a time: no "..", no absolute path
        return out

    @property
    def producer(self) -> StepRunView | None:
        """The step run that wrote this artifact."""
        if self.record.producer_step_run_id is None:
            return None
        return StepRunView(self._client, self._client.store.get_step_run(self.record.producer_step_run_id))

    @property
    def consumers(self) -> list[StepRunView]:
        """Step runs that read this artifact."""
        return [StepRunView(self._client, r) for r in self._client.store.artifact_consumers(self.id)]

    def load(self, *, data_type: Any = None, allow_unsafe: bool = False) -> Any:
        """Load the artifact's value with the materializer that saved it.

        The record is data: the materializer and type it names are used only
        if this process trusts them (installed for conveyor, or this project's
        code); see :func:`conveyor.materializers.trusted_materializer`.

        Args:
            data_type: the type to load as (default: the one recorded).
            allow_unsafe: load with a pickle materializer, which runs code
                stored in the artifact; only for stores whose writers you trust.

        Raises:
            MaterializerError: the record names a materializer or type this process does not trust.
            StoreError: the artifact's files are gone, or outside its store.
        """
        from conveyor.materializers import trusted_materializer, trusted_type

        store = self._client.artifact_store_for(self.uri)
        roots = self._client.source_roots()
        cls = trusted_materializer(self.materializer, allow_unsafe=allow_unsafe, roots=roots)
        if data_type is None:
            data_type = trusted_type(self.data_type, roots=roots, also=cls.ASSOCIATED_TYPES)
        if not store.exists(self.uri):
            from conveyor.exceptions import StoreError

            raise StoreError(
                f"the files of artifact {self.name} v{self.version} are gone from {self.uri}",
                "run the step that made it again (conveyor gc removed them, or they were deleted)",
            )
        return cls(self.uri, store).load(data_type)

    def __repr__(self) -> str:
        return f"<artifact {self.name} v{self.version} {self.data_type}>"


class StepRunView:
    """One step of a run."""

    def __init__(self, client: Client, record: StepRunRecord) -> None:
        self._client = client
        self.record = record

    id = property(lambda self: self.record.id)
    step_id = property(lambda self: self.record.step_id)
    name = property(lambda self: self.record.step_name)
    status = property(lambda self: self.record.status)
    cached = property(lambda self: self.record.cached)
    started = property(lambda self: self.record.started)
    ended = property(lambda self: self.record.ended)
    source = property(lambda self: self.record.source)
    code_hash = property(lambda self: self.record.code_hash)
    error = property(lambda self: self.record.error)
    attempts = property(lambda self: self.record.attempts)
    cache_key = property(lambda self: self.record.cache_key)
    image = property(lambda self: self.record.image)

    @cached_property
    def parameters(self) -> dict[str, Any]:
        """The parameters the step ran with (the deployment's, with the run's overrides)."""
        from conveyor.ir import ParameterInput

        run = self._client.store.get_run(self.record.run_id)
        deployment = self._client.deployment(run.deployment_id)
        try:
            step = deployment.pipeline.step(self.step_id)
        except KeyError:
            return dict(self.record.parameters)
        params = {}
        for name, inp in step.inputs.items():
            if isinstance(inp, ParameterInput):
                linked = inp.pipeline_parameter
                params[name] = run.parameters.get(linked, inp.value) if linked else inp.value
        return {**params, **self.record.parameters}

    @cached_property
    def inputs(self) -> dict[str, ArtifactView]:
        """``{input name: artifact}``."""
        return {
            k: ArtifactView(self._client, v)
            for k, v in self._client.store.step_run_artifacts(self.id, inputs=True).items()
        }

    @cached_property
    def outputs(self) -> dict[str, ArtifactView]:
        """``{output name: artifact}``."""
        return {
            k: ArtifactView(self._client, v)
            for k, v in self._client.store.step_run_artifacts(self.id, inputs=False).items()
        }

    @property
    def output(self) -> ArtifactView:
        """The only output of the step."""
        outs = self.outputs
        if len(outs) != 1:
            raise NotFoundError(
                f"step {self.step_id!r} has {len(outs)} outputs", f"use .outputs[name] ({', '.join(outs)})"
            )
        return next(iter(outs.values()))

    def logs(self) -> str:
        """What the step printed and logged (with the traceback if it failed).

        Raises:
            StoreError: the record points outside every registered artifact store.
        """
        uri = self.record.logs_uri
        if not uri:
            return ""
        store = self._client.artifact_store_for(uri)
        if not store.exists(uri):
            return ""
        with store.open(uri, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<step run {self.step_id} {self.status}>"


class PipelineRunView:
    """One run of a pipeline."""

    def __init__(self, client: Client, record: RunRecord) -> None:
        self._client = client
        self.record = record

    id = property(lambda self: self.record.id)
    name = property(lambda self: self.record.name)
    status = property(lambda self: self.record.status)
    created = property(lambda self: self.record.created)
    started = property(lambda self: self.record.started)
    ended = property(lambda self: self.record.ended)
    stack_name = property(lambda self: self.record.stack_name)
    orchestrator = property(lambda self: self.record.orchestrator)
    orchestrator_run_id = property(lambda self: self.record.orchestrator_run_id)
    code_commit = property(lambda self: self.record.code_commit)
    code_dirty = property(lambda self: self.record.code_dirty)
    error = property(lambda self: self.record.error)
    deployment_id = property(lambda self: self.record.deployment_id)

    @property
    def pipeline_name(self) -> str:
        """The pipeline's name."""
        return self._client.store.get_pipeline(self.record.pipeline_id).name

    @cached_property
    def parameters(self) -> dict[str, Any]:
        """The pipeline parameters of the run: the deployment's, with the run's overrides."""
        deployment = self._client.deployment(self.deployment_id)
        return {**deployment.pipeline.parameters, **self.record.parameters}

    @cached_property
    def steps(self) -> dict[str, StepRunView]:
        """``{step id: step run}`` in pipeline order."""
        records = {r.step_id: r for r in self._client.store.list_step_runs(self.id)}
        order = [s.id for s in self._client.deployment(self.deployment_id).pipeline.steps]
        ordered = [sid for sid in order if sid in records] + [sid for sid in records if sid not in order]
        return {sid: StepRunView(self._client, records[sid]) for sid in ordered}

    def refresh(self) -> PipelineRunView:
        """The same run, read again from the store."""
        return self._client.get_run(self.id)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, if it ended."""
        if self.started is None or self.ended is None:
            return None
        return (self.ended - self.started).total_seconds()

    def __repr__(self) -> str:
        return f"<run {self.name} {self.status}>"


class PipelineView:
    """A pipeline and its runs."""

    def __init__(self, client: Client, record: PipelineRecord) -> None:
        self._client = client
        self.record = record

    id = property(lambda self: self.record.id)
    name = property(lambda self: self.record.name)

    @property
    def runs(self) -> list[PipelineRunView]:
        """Runs, newest first."""
        return [PipelineRunView(self._client, r) for r in self._client.store.list_runs(self.id)]

    @property
    def last_run(self) -> PipelineRunView:
        """The newest run."""
        runs = self._client.store.list_runs(self.id, limit=1)
        if not runs:
            raise NotFoundError(f"pipeline {self.name!r} has no runs")
        return PipelineRunView(self._client, runs[0])

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


class Client:
    """Entry point to everything conveyor has recorded.

    Args:
        repository: the repository to use (default: the working folder's).
    """

    def __init__(self, repository: Repository | None = None) -> None:
        from conveyor._repository import Repository

        self.repository = repository or Repository.current()
        self._stores: dict[str, ArtifactStore] = {}
        self._deployments: dict[str, Deployment] = {}

    @cached_property
    def store(self) -> MetadataStore:
        """The metadata store (runs whose driver on this machine was killed are settled as it opens)."""
        from conveyor._repository import settle_dead_runs

        store = self.repository.store()
        settle_dead_runs(store)
        return store

    # -- pipelines, runs, artifacts --------------------------------------------------
    def get_pipeline(self, name: str) -> PipelineView:
        """A pipeline by name or id."""
        return PipelineView(self, self.store.get_pipeline(name))

    def list_pipelines(self) -> list[PipelineView]:
        """Every pipeline."""
        return [PipelineView(self, p) for p in self.store.list_pipelines()]

    def get_run(self, name_or_id: str) -> PipelineRunView:
        """A run by id or name."""
        return PipelineRunView(self, self.store.get_run(name_or_id))

    def list_runs(self, pipeline: str | None = None, limit: int | None = None) -> list[PipelineRunView]:
        """Runs, newest first, optionally of one pipeline."""
        pid = self.store.get_pipeline(pipeline).id if pipeline else None
        return [PipelineRunView(self, r) for r in self.store.list_runs(pid, limit)]

    def get_artifact(self, artifact_id: str) -> ArtifactView:
        """An artifact version by id."""
        return ArtifactView(self, self.store.get_artifact(artifact_id))

    def list_artifacts(self, name: str | None = None) -> list[ArtifactView]:
        """Artifact versions, newest first."""
        return [ArtifactView(self, a) for a in self.store.list_artifacts(name)]

    def artifact_store_for(self, uri: str) -> ArtifactStore:
        """The registered artifact store that holds ``uri`` (configured from its component).

        Raises:
            StoreError: no registered artifact store holds ``uri`` (a record that
                points elsewhere is refused, never read).
        """
        from conveyor.stack import flavors

        for store in self._stores.values():
            if store.contains(uri):
                return store
        best: tuple[int, ComponentRecord] | None = None
        for comp in self.store.list_components("artifact_store"):
            path = str(comp.config.get("path", "")).rstrip("/")
            if path and (best is None or len(path) > best[0]):
                if "://" not in path:
                    path = os.path.abspath(os.path.expanduser(path))
                if uri == path or uri.startswith(path + ("/" if "://" in path else os.sep)):
                    best = (len(path), comp)
        if best is not None:
            comp = best[1]
            flavor = flavors.get("artifact_store", comp.flavor, install=comp.install)
            store = flavor.build(comp.name, dict(comp.config))
            if store.contains(uri):
                self._stores[comp.name] = store
                return store
        from conveyor.exceptions import StoreError

        raise StoreError(
            f"{uri!r} is in no registered artifact store",
            "records point only into artifact stores; this one was changed by hand or its store was deleted",
        )

    def deployment(self, deployment_id: str) -> Deployment:
        """A stored deployment (read once per client)."""
        from conveyor.ir import load_deployment

        found = self._deployments.get(deployment_id)
        if found is None:
            found = self._deployments[deployment_id] = load_deployment(self.store.get_deployment_json(deployment_id))
        return found

    def source_roots(self) -> list[str]:
        """Folders of this project's own code: the repository's and the working folder."""
        return [str(self.repository.root), os.getcwd()]

    # -- stacks and components -------------------------------------------------------
    def register_component(
        self, component_type: str, name: str, flavor: str, config: Mapping[str, Any]
    ) -> ComponentRecord:
        """Register a stack component after validating its config against its flavor."""
        from conveyor.stack import flavors

        spec = flavors.get(component_type, flavor)
        clean = spec.validate_config(dict(config), component=name)
        return self.store.create_component(component_type, flavor, name, clean, install=spec.install)

    def update_component(
        self, component_type: str, name: str, config: Mapping[str, Any], *, replace: bool = False
    ) -> ComponentRecord:
        """Change options of a component (merged over the old ones unless ``replace``)."""
        from conveyor.stack import flavors

        record = self.store.get_component(component_type, name)
        spec = flavors.get(component_type, record.flavor, install=record.install)
        merged = dict(config) if replace else {**record.config, **config}
        return self.store.update_component(component_type, name, spec.validate_config(merged, component=name))

    def register_stack(self, name: str, components: Mapping[str, str]) -> StackRecord:
        """Register a stack from ``{component type: component name}``."""
        return self.store.save_stack(name, self._component_ids(name, components), create=True)

    def update_stack(self, name: str, components: Mapping[str, str | None]) -> StackRecord:
        """Change a stack's components (a ``None`` name removes that type)."""
        current = {t: c.name for t, c in self.store.get_stack(name).components.items()}
        for ctype, cname in components.items():
            if cname is None:
                current.pop(ctype, None)
            else:
                current[ctype] = cname
        return self.store.save_stack(name, self._component_ids(name, current), create=False)

    def _component_ids(self, stack: str, components: Mapping[str, str]) -> dict[str, str]:
        from conveyor.stack import ComponentType

        missing = [c for c in ComponentType.REQUIRED if c not in components]
        if missing:
            kind = ComponentType.cli_name(missing[0])
            article = "an" if kind[0] in "aeiou" else "a"
            raise StackError(f"stack {stack!r} needs {article} {kind}", f"pass --{kind} NAME")
        return {t: self.store.get_component(t, n).id for t, n in components.items()}

    def get_stack(self, name: str | None = None) -> StackRecord:
        """A stack (default: the active one)."""
        return self.store.get_stack(name or self.repository.active_stack_name)

    def list_stacks(self) -> list[StackRecord]:
        """Every stack."""
        return self.store.list_stacks()

    def activate_stack(self, name: str) -> None:
        """Make a stack the active one of this repository."""
        self.store.get_stack(name)
        self.repository.update_config(active_stack=name)

    @property
    def active_stack_name(self) -> str:
        """The name of the active stack."""
        return self.repository.active_stack_name

    def copy_stack(self, source: str, target: str) -> StackRecord:
        """A new stack with the same components as ``source``."""
        record = self.store.get_stack(source)
        return self.store.save_stack(target, {t: c.id for t, c in record.components.items()}, create=True)

    def delete_stack(self, name: str) -> None:
        """Delete a stack (not the active one)."""
        if name == self.repository.active_stack_name:
            raise StackError(f"stack {name!r} is active", "activate another first: conveyor stack set NAME")
        self.store.delete_stack(name)

    # -- secrets ---------------------------------------------------------------------
    def _secrets(self) -> SecretStore:
        return self.store.secret_store(folder=self.repository.dir)

    def create_secret(
        self, name: str, values: Mapping[str, str], *, schema: str = "plain", shared: bool = False
    ) -> SecretInfo:
        """Store a new secret, encrypted (``schema``: plain, aws, gcp, azure, registry).

        Raises:
            SecretError: a bad name, key or value, or the name is taken.
        """
        return self._secrets().create(name, values, schema=schema, shared=shared)

    def get_secret(self, name: str) -> Secret:
        """A secret of yours or a shared one, with its values (``secret["key"]``).

        Raises:
            SecretError: no such secret, or the key in force cannot decrypt it.
        """
        return self._secrets().get(name)

    def list_secrets(self) -> list[SecretInfo]:
        """Your secrets and the shared ones, without values."""
        return self._secrets().list()

    def update_secret(
        self,
        name: str,
        values: Mapping[str, str] | None = None,
        *,
        remove_keys: Sequence[str] = (),
        replace: bool = False,
        shared: bool | None = None,
    ) -> SecretInfo:
        """Set or remove keys of a secret of yours, or share or unshare it.

        Raises:
            SecretError: no such secret of yours, or the result breaks its schema.
        """
        return self._secrets().update(name, values, remove_keys=remove_keys, replace=replace, shared=shared)

    def delete_secret(self, name: str) -> None:
        """Delete a secret of yours.

        Raises:
            SecretError: no such secret of yours.
        """
        self._secrets().delete(name)


def format_time(value: datetime | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS`` (UTC), or ``-``."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"
