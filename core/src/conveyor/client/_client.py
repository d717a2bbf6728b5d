"""``Client``: read back pipelines, runs, steps and artifacts; manage stacks."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
        HookInvocationRecord,
        MetadataStore,
        ModelAliasEventRecord,
        ModelRecord,
        ModelVersionLinkRecord,
        ModelVersionRecord,
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
    pipeline_name = property(lambda self: self.record.pipeline_name)
    step_id = property(lambda self: self.record.step_id)
    removed = property(lambda self: self.record.removed)

    @property
    def size(self) -> int | None:
        """Bytes of its files, as recorded when it was saved (None when not recorded)."""
        manifest = self.record.manifest
        return sum(manifest.values()) if manifest is not None else None

    def files_gone(self) -> str | None:
        """Why its files cannot be read (removed, or missing from its store), or None when they are there.

        Raises:
            StoreError: the record points outside every registered artifact store.
        """
        if self.removed is not None:
            return f"the files of artifact {self.name} v{self.version} were removed on {format_time(self.removed)}"
        store = self._client.artifact_store_for(self.uri)
        if not store.exists(self.uri):
            return f"the files of artifact {self.name} v{self.version} are gone from {self.uri}"
        if self.record.manifest:
            missing = sorted(set(self.record.manifest) - set(store.manifest(self.uri)))
            if missing:
                return f"artifact {self.name} v{self.version} lost {missing[0]!r} from {self.uri}"
        return None

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

        gone = self.files_gone()
        if gone is not None:
            from conveyor.exceptions import StoreError

            raise StoreError(gone, "run the step that made it again")
        store = self._client.artifact_store_for(self.uri)
        roots = self._client.source_roots()
        cls = trusted_materializer(self.materializer, allow_unsafe=allow_unsafe, roots=roots)
        if data_type is None:
            data_type = trusted_type(self.data_type, roots=roots, also=cls.ASSOCIATED_TYPES)
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

    @property
    def metadata(self) -> dict[str, Any]:
        """What the step logged with :func:`conveyor.log_metadata` (a cached step: what it logged when it ran)."""
        return dict(self.record.metadata or {})

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
    tags = property(lambda self: self.record.tags)

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

    @cached_property
    def model_versions(self) -> list[ModelVersionView]:
        """The model versions the run's steps worked in (its pipeline's model, steps' own models)."""
        return self._linked_versions(produced=True)

    @cached_property
    def used_model_versions(self) -> list[ModelVersionView]:
        """The model versions the run's steps loaded artifacts of."""
        return self._linked_versions(produced=False)

    @cached_property
    def _links(self) -> list[ModelVersionLinkRecord]:
        return self._client.store.list_model_version_links(run_id=self.id)

    def _linked_versions(self, *, produced: bool) -> list[ModelVersionView]:
        from conveyor.stores import ModelLinkRole

        role = ModelLinkRole.PRODUCED if produced else ModelLinkRole.CONSUMED
        versions = {link.model_version_id: link for link in self._links if link.role == role}
        return [self._client.get_model_version(link.model_name, link.model_version_id) for link in versions.values()]

    @property
    def hooks(self) -> list[HookInvocationRecord]:
        """Every hook that ran for the run or its steps, in the order they started, with how each ended."""
        return self._client.store.list_hook_invocations(self.id)

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

    @cached_property
    def tags(self) -> tuple[str, ...]:
        """The tags of the pipeline as last run or deployed (``@pipeline(tags=[...])``); its runs start with them."""
        deployment_id = self._client.store.latest_deployment_id(self.id)
        if deployment_id is None:
            return ()
        return tuple(sorted(self._client.deployment(deployment_id).pipeline.tags))

    @property
    def last_run(self) -> PipelineRunView:
        """The newest run."""
        runs = self._client.store.list_runs(self.id, limit=1)
        if not runs:
            raise NotFoundError(f"pipeline {self.name!r} has no runs")
        return PipelineRunView(self._client, runs[0])

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


class ModelVersionView:
    """One numbered version of a model: the runs, steps and artifacts linked to it, and what they logged."""

    def __init__(self, client: Client, record: ModelVersionRecord) -> None:
        self._client = client
        self.record = record

    id = property(lambda self: self.record.id)
    model_name = property(lambda self: self.record.model_name)
    number = property(lambda self: self.record.number)
    name = property(lambda self: self.record.name)
    aliases = property(lambda self: list(self.record.aliases))
    created = property(lambda self: self.record.created)

    @cached_property
    def links(self) -> list[ModelVersionLinkRecord]:
        """Every link: step runs that produced into it or loaded from it, with their artifacts."""
        return self._client.store.list_model_version_links(version_id=self.id)

    @cached_property
    def artifacts(self) -> dict[str, ArtifactView]:
        """``{artifact name: artifact}`` its steps produced (cached artifacts too; the newest of each name)."""
        found = self._client.store.model_version_artifacts(self.id)
        return {name: ArtifactView(self._client, record) for name, record in found.items()}

    @property
    def metadata(self) -> dict[str, Any]:
        """What its steps logged, merged in the order they ran (later keys win)."""
        from conveyor.stores import ModelLinkRole

        merged: dict[str, Any] = {}
        for link in self.links:
            if link.role == ModelLinkRole.PRODUCED and link.artifact_id is None:
                merged.update(link.metadata)
        return merged

    @property
    def run(self) -> PipelineRunView | None:
        """The run that created the version."""
        return self._client.get_run(self.record.run_id) if self.record.run_id else None

    @property
    def runs(self) -> list[PipelineRunView]:
        """The runs whose steps produced into the version, oldest first."""
        from conveyor.stores import ModelLinkRole

        return self._runs(ModelLinkRole.PRODUCED)

    @property
    def consumers(self) -> list[PipelineRunView]:
        """The runs whose steps loaded an artifact of the version, oldest first."""
        from conveyor.stores import ModelLinkRole

        return self._runs(ModelLinkRole.CONSUMED)

    def _runs(self, role: str) -> list[PipelineRunView]:
        ids = [self.record.run_id] if role == "produced" and self.record.run_id else []
        ids += [link.run_id for link in self.links if link.role == role]
        return [self._client.get_run(i) for i in dict.fromkeys(ids)]

    def set_alias(self, alias: str) -> None:
        """Point ``alias`` of its model at this version (the move is recorded)."""
        self._client.set_model_version_alias(self.model_name, self.id, alias)

    def __repr__(self) -> str:
        return f"<model version {self.model_name} {self.number}>"


class ModelView:
    """A model and its versions."""

    def __init__(self, client: Client, record: ModelRecord) -> None:
        self._client = client
        self.record = record

    id = property(lambda self: self.record.id)
    name = property(lambda self: self.record.name)
    description = property(lambda self: self.record.description)
    tags = property(lambda self: list(self.record.tags))
    license = property(lambda self: self.record.license)
    created = property(lambda self: self.record.created)

    @property
    def versions(self) -> list[ModelVersionView]:
        """Every version, by number."""
        return self._client.list_model_versions(self.name)

    @property
    def latest(self) -> ModelVersionView:
        """The newest version.

        Raises:
            NotFoundError: the model has no version yet.
        """
        return self._client.get_model_version(self.name)

    @property
    def aliases(self) -> dict[str, int]:
        """``{alias: version number}`` of its aliases now."""
        return {alias: v.number for v in self.versions for alias in v.aliases}

    def __repr__(self) -> str:
        return f"<model {self.name}>"


class Client:
    """Entry point to everything conveyor has recorded.

    Args:
        repository: the repository to use (default: the working folder's).

    Raises:
        NoRepositoryError: no repository here (a client never creates one; running a pipeline does).
    """

    def __init__(self, repository: Repository | None = None) -> None:
        from conveyor._repository import Repository

        self.repository = repository or Repository.existing()
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

    def list_pipelines(self, *, tags: Sequence[str] = ()) -> list[PipelineView]:
        """Every pipeline, by name; with ``tags``, those tagged with every one of them."""
        if isinstance(tags, str):
            tags = [tags]
        views = [PipelineView(self, p) for p in self.store.list_pipelines()]
        return [v for v in views if set(tags) <= set(v.tags)]

    def get_run(self, name_or_id: str) -> PipelineRunView:
        """A run by name, id, unique id prefix (at least 4 characters), or ``latest`` (the newest run).

        Raises:
            NotFoundError: no such run.
            AmbiguousIdError: the prefix fits several runs.
        """
        return PipelineRunView(self, self.store.get_run(name_or_id))

    def list_runs(
        self, pipeline: str | None = None, limit: int | None = None, *, tags: Sequence[str] = ()
    ) -> list[PipelineRunView]:
        """Runs, newest first: of one pipeline, and with every tag in ``tags``, when given."""
        if isinstance(tags, str):
            tags = [tags]
        pid = self.store.get_pipeline(pipeline).id if pipeline else None
        return [PipelineRunView(self, r) for r in self.store.list_runs(pid, limit, tags=tags)]

    def tag_run(self, run: str, add: Sequence[str] = (), *, remove: Sequence[str] = ()) -> tuple[str, ...]:
        """Add tags to a run (and remove others); returns its tags.

        Raises:
            ConfigError: a tag the naming rule refuses.
            NotFoundError: no such run.
        """
        if isinstance(add, str):
            add = [add]
        if isinstance(remove, str):
            remove = [remove]
        return self.store.tag_run(self.store.get_run(run).id, add=add, remove=remove)

    def delete_run(self, run: str, *, force: bool = False) -> PipelineRunView:
        """Delete a run: its record, step runs, tags and log files (those no later cached step shows).

        The artifacts it made stay while other runs use them; ``conveyor gc``
        (:meth:`collect_garbage`) removes the files of the others. Returns the
        deleted run as it was.

        Args:
            force: delete it even while it is running.

        Raises:
            NotFoundError: no such run.
            StoreError: it is running (and not ``force``).
        """
        view = self.get_run(run)
        for uri in self.store.delete_run(view.id, force=force):
            try:
                self.artifact_store_for(uri).remove(uri)
            except Exception as exc:  # noqa: BLE001 - the record is gone; a log file that stays is only bytes
                import sys

                print(f"conveyor: warning: could not remove {uri}: {exc}", file=sys.stderr)
        return view

    def get_artifact(self, artifact_id: str) -> ArtifactView:
        """An artifact version by id or unique id prefix (at least 4 characters)."""
        return ArtifactView(self, self.store.get_artifact(artifact_id))

    def list_artifacts(
        self,
        name: str | None = None,
        *,
        pipeline: str | None = None,
        step: str | None = None,
        limit: int | None = None,
        removed: bool = False,
    ) -> list[ArtifactView]:
        """Artifact versions, newest first.

        Args:
            name: an artifact name, or an output name (``model`` finds ``model`` and ``train::fit::model``).
            pipeline: only those its runs made.
            step: only those this step call (its id) made.
            limit: at most this many.
            removed: include those whose files were removed.
        """
        records = self.store.list_artifacts(name, pipeline=pipeline, step=step, limit=limit, removed=removed)
        return [ArtifactView(self, a) for a in records]

    def get_artifact_version(self, name: str, version: int | None = None) -> ArtifactView:
        """A version of the artifact of this name: ``version``, or the newest one whose files are there.

        ``name`` is an artifact's name (``model`` given with ``ArtifactConfig``,
        or ``train::fit::model``), or the output name of one scoped name
        (``model`` when only ``train::fit::model`` ends with it).

        Raises:
            NotFoundError: no artifact of that name, or no such version.
            AmbiguousIdError: ``name`` is the output of several scoped names.
        """
        from conveyor.exceptions import AmbiguousIdError

        records = self.store.list_artifacts(name, removed=True)
        exact = [r for r in records if r.name == name]
        if not exact and records:
            full = sorted({r.name for r in records})
            if len(full) > 1:
                raise AmbiguousIdError(
                    f"{len(full)} artifacts have an output named {name!r}: {', '.join(full[:4])}"
                    + (", ..." if len(full) > 4 else ""),
                    "give the full name",
                )
            exact = records
        if not exact:
            raise NotFoundError(f"no artifact named {name!r}", "see `conveyor artifact list`")
        if version is not None:
            found = [r for r in exact if r.version == version]
            if not found:
                raise NotFoundError(
                    f"artifact {exact[0].name!r} has no version {version}",
                    f"its newest is v{max(r.version for r in exact)}",
                )
            return ArtifactView(self, found[0])
        present = [r for r in exact if r.removed is None] or exact
        return ArtifactView(self, max(present, key=lambda r: r.version))

    def save_artifact(self, value: Any, name: str, *, materializer: type | None = None) -> ArtifactView:
        """Save a value made outside a pipeline as the next version of artifact ``name``; see :func:`save_artifact`."""
        from conveyor.exceptions import ConfigError
        from conveyor.ir import NAME_RULE, name_problem, shown
        from conveyor.materializers import registry
        from conveyor.runtime import write_artifact
        from conveyor.runtime._context import _current
        from conveyor.stores import new_id

        if _current.get() is not None:
            raise ConfigError(
                "save_artifact() is for values made outside a pipeline",
                "return the value from the step instead; Annotated[T, ArtifactConfig(name=...)] names its artifact",
            )
        problem = name_problem(name)
        if problem is not None:
            raise ConfigError(f"artifact name {shown(name)} {problem}", NAME_RULE)
        cls = materializer or registry.get(type(value), where=f"artifact {name!r}")
        store = self.repository.stack().artifact_store
        # ".saved" is a folder no pipeline can have: names never start with a dot.
        uri = store.join(".saved", name, new_id())
        fields = write_artifact(store, uri, cls, value)
        try:
            record = self.store.create_artifact_version(name=name, **fields)
        except BaseException:
            store.remove(uri)  # registered nowhere: nothing may refer to it
            raise
        return ArtifactView(self, record)

    def runs_using(self, artifact: str) -> list[PipelineRunView]:
        """Runs that made, read or reused (from the cache) an artifact version, newest first."""
        return [PipelineRunView(self, r) for r in self.store.runs_using_artifact(self.get_artifact(artifact).id)]

    def delete_artifact(self, artifact: str, *, force: bool = False) -> ArtifactView:
        """Remove the files of an artifact version; its record stays, marked removed (versions are never reused).

        Args:
            force: remove them even though runs that are kept use it (they keep
                their records; loading the artifact then says it was removed).

        Raises:
            StoreError: a kept run uses it (and not ``force``).
        """
        view = self.get_artifact(artifact)
        if not force:
            self.check_artifact_unused(view.id)
        self._remove_files(view)
        return ArtifactView(self, self.store.get_artifact(view.id))

    def check_artifact_unused(self, artifact: str) -> None:
        """Raise when a kept run made, read or reused an artifact version (what :meth:`delete_artifact` refuses).

        Raises:
            StoreError: a kept run uses it.
        """
        from conveyor.exceptions import StoreError

        view = self.get_artifact(artifact)
        users = self.store.runs_using_artifact(view.id)
        if users:
            names = ", ".join(r.name for r in users[:3]) + (f" and {len(users) - 3} more" if len(users) > 3 else "")
            raise StoreError(
                f"artifact {view.name} v{view.version} is used by run {names}",
                "delete those runs first (conveyor run delete), or remove its files anyway with --force",
            )

    def collect_garbage(self, *, dry_run: bool = False) -> Garbage:
        """Remove the files of artifacts that no kept run uses (their runs were deleted).

        Values saved with :func:`save_artifact` are kept until deleted with
        :meth:`delete_artifact`. Their records stay, marked removed. Without
        ``dry_run`` it also removes what killed saves left in the artifact
        stores of failed and stopped runs.

        Args:
            dry_run: only say what would be removed.
        """
        views = [ArtifactView(self, r) for r in self.store.unreferenced_artifacts()]
        sizes = [self._size(v) for v in views]
        garbage = Garbage(artifacts=views, bytes=sum(sizes), leftovers=0)
        if dry_run:
            return garbage
        for view in views:
            self._remove_files(view)
        garbage.leftovers = self._remove_leftovers()
        return garbage

    def _size(self, view: ArtifactView) -> int:
        if view.size is not None:
            return view.size
        try:
            store = self.artifact_store_for(view.uri)
            return sum(store.manifest(view.uri).values()) if store.exists(view.uri) else 0
        except Exception:  # noqa: BLE001 - a store that cannot be read frees nothing we can count
            return 0

    def _remove_files(self, view: ArtifactView) -> None:
        store = self.artifact_store_for(view.uri)
        store.remove(view.uri)
        self.store.mark_artifact_removed(view.id)

    def _remove_leftovers(self) -> int:
        from conveyor._repository import remove_temporary_folders
        from conveyor.stores import RunStatus

        removed = 0
        for status in (RunStatus.FAILED, RunStatus.STOPPED):
            for run in self.store.list_runs(status=status):
                try:
                    removed += remove_temporary_folders(self.store, run)
                except Exception:  # noqa: BLE001 - a store that cannot be reached keeps its leftovers
                    continue
        return removed

    # -- models --------------------------------------------------------------------
    def get_model(self, name: str) -> ModelView:
        """A model by name or id.

        Raises:
            NotFoundError: no such model (naming the closest).
        """
        return ModelView(self, self.store.get_model(name))

    def list_models(self) -> list[ModelView]:
        """Every model, by name."""
        return [ModelView(self, m) for m in self.store.list_models()]

    def get_model_version(self, model: str, version: str | int = "latest") -> ModelVersionView:
        """A version of a model by number, ``"latest"``, alias, name or id.

        Raises:
            NotFoundError: no such model, version or alias (naming the closest).
        """
        return ModelVersionView(self, self.store.get_model_version(model, str(version)))

    def list_model_versions(self, model: str) -> list[ModelVersionView]:
        """The versions of a model, by number."""
        return [ModelVersionView(self, v) for v in self.store.list_model_versions(model)]

    def set_model_version_alias(self, model: str, version: str | int, alias: str) -> ModelAliasEventRecord | None:
        """Point ``alias`` of ``model`` at a version of it; the move is recorded (time, user, from, to).

        Returns the move, or None when the alias pointed there already.

        Raises:
            ConfigError: the version is one of another model, or the alias is not a valid name.
            NotFoundError: no such model or version.
        """
        target = self.store.get_model_version(model, str(version))
        return self.store.set_model_alias(model, alias, target.id, moved_by=_user())

    def remove_model_version_alias(self, model: str, alias: str) -> ModelAliasEventRecord | None:
        """Remove an alias of a model; the removal is recorded.

        Raises:
            NotFoundError: no such model or alias.
        """
        return self.store.set_model_alias(model, alias, None, moved_by=_user())

    def model_alias_history(self, model: str, alias: str | None = None) -> list[ModelAliasEventRecord]:
        """Who moved which alias of a model when, from which version to which; oldest first."""
        return self.store.list_model_alias_events(model, alias)

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


def _user() -> str:
    """Who moves an alias: the login name of this process's user."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a container's user)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


@dataclass
class Garbage:
    """What :meth:`Client.collect_garbage` removed (or, in a dry run, would remove)."""

    artifacts: list[ArtifactView]
    """The artifact versions whose files go."""
    bytes: int
    """Their size, from what was recorded when they were saved."""
    leftovers: int
    """Folders of killed saves removed (none in a dry run)."""


def save_artifact(value: Any, name: str, *, materializer: type | None = None) -> ArtifactView:
    """Save a value made outside a pipeline as the next version of artifact ``name``.

    It goes to the active stack's artifact store and is versioned under
    ``name`` exactly, like outputs named with ``ArtifactConfig(name=...)``:
    they share one sequence. ``conveyor gc`` never removes it.

    Args:
        value: the value (any type a materializer is installed for).
        name: the artifact's name (the naming rule of pipelines and steps).
        materializer: the materializer class to save it with (default: by type).

    Raises:
        ConfigError: a bad name, or called inside a step.
        MaterializerError: no materializer for its type.
        NoRepositoryError: no repository here.
    """
    return Client().save_artifact(value, name, materializer=materializer)


def load_artifact(name_or_id: str, version: int | None = None, *, allow_unsafe: bool = False) -> Any:
    """Load a version of artifact ``name_or_id`` (the newest, by default), or an artifact version by id.

    Args:
        name_or_id: a name as :meth:`Client.get_artifact_version` takes it, or an id (or a prefix of one).
        version: the version number.
        allow_unsafe: allow a pickle materializer (see :meth:`ArtifactView.load`).

    Raises:
        NotFoundError: no such artifact or version.
    """
    client = Client()
    try:
        view = client.get_artifact_version(name_or_id, version)
    except NotFoundError as by_name:
        if version is not None:
            raise
        try:
            view = client.get_artifact(name_or_id)
        except NotFoundError:
            raise by_name from None
    return view.load(allow_unsafe=allow_unsafe)


def format_time(value: datetime | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM:SS`` (UTC), or ``-``."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"
