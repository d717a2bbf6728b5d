"""The metadata store interface: what the Client, the CLI, the runtime and orchestrators call.

Two implementations exist: :class:`conveyor.stores.sql.SqlStore` (the
embedded SQLite default and a team's MariaDB/MySQL/PostgreSQL database) and
the REST store that talks to a conveyor server. :func:`conveyor.stores.open_store`
picks one by the URL's scheme. Nothing here imports SQLAlchemy.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from conveyor.stores._records import (
    ArtifactRecord,
    ComponentRecord,
    HookInvocationRecord,
    ModelAliasEventRecord,
    ModelRecord,
    ModelVersionLinkRecord,
    ModelVersionRecord,
    PipelineRecord,
    RunRecord,
    RunStatus,
    StackRecord,
    StepRunRecord,
    now,
)

if TYPE_CHECKING:
    from pathlib import Path

    from conveyor.secrets import SecretStore

DEAD_OWNER_ERROR = "the process running this pipeline ended without finishing it (killed?)"

ID_KINDS: dict[str, tuple[str, str | None]] = {
    "run": ("run", "see `conveyor pipeline runs`"),
    "artifact": ("artifact version", "see `conveyor artifact list`"),
    "step_run": ("step run", "see `conveyor run describe RUN --json`"),
}
"""Kinds of record :meth:`MetadataStore.resolve_id` finds by id prefix: ``{kind: (what it is called, hint)}``."""

MIN_ID_PREFIX = 4
"""The shortest id prefix accepted: a stray digit must not name a record (``conveyor run delete 1``)."""

LATEST = "latest"
"""What names the newest run wherever a run is named (``conveyor run describe latest``)."""


def check_tags(tags: Iterable[str]) -> list[str]:
    """Tags, each checked against the naming rule, without duplicates (every store checks them the same way).

    Raises:
        ConfigError: a tag the naming rule refuses.
    """
    from conveyor.exceptions import ConfigError
    from conveyor.ir import NAME_RULE, name_problem, shown

    out: list[str] = []
    for tag in tags:
        problem = name_problem(tag) if isinstance(tag, str) else "is not text"
        if problem is not None:
            raise ConfigError(f"tag {shown(tag) if isinstance(tag, str) else repr(tag)} {problem}", NAME_RULE)
        if tag not in out:
            out.append(tag)
    return out


class MetadataStore(abc.ABC):
    """Pipelines, deployments, runs, step runs, artifacts, stacks and secrets.

    Attributes:
        url: how a process on this machine reaches the same store (with any
            password: never print it; use :attr:`display_url`).
        backend: ``sqlite``, ``mysql``, ``postgresql`` or ``rest``.
    """

    url: str
    backend: str

    # -- connection ------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def display_url(self) -> str:
        """The URL with any password hidden, for messages."""

    @property
    def local_path(self) -> str | None:
        """The database file when the store is a file on this machine (SQLite), else None."""
        return None

    def child_environment(self, run_id: str | None = None) -> dict[str, str]:
        """Environment variables a step process needs to reach this store, for the steps of ``run_id``.

        A SQL store hands over its URL. A REST store asks the server for a
        token scoped to ``run_id`` and hands over only the server's URL and
        that token: no database URL, no secrets key, no user credential.
        """
        from conveyor.constants import ENV_STORE_URL

        return {ENV_STORE_URL: self.url}

    def scope_to_run(self, run_id: str) -> None:  # noqa: B027 - SQL stores have no narrower credential
        """From now on act with the narrowest credential for this run.

        The step command calls it once it knows its run: a REST store holding a
        ``runner`` API key exchanges it for a token scoped to that run (and puts
        it in ``CONVEYOR_API_KEY`` for the rest of the process). A SQL store
        does nothing.

        Raises:
            RunSettledError: the run ended long enough ago that no token is given for it.
        """

    def close(self) -> None:  # noqa: B027 - stores without connections have nothing to release
        """Release connections."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display_url!r})"

    # -- pipelines and deployments ---------------------------------------------------
    @abc.abstractmethod
    def get_or_create_pipeline(self, name: str) -> PipelineRecord:
        """The pipeline of this name, created on first use."""

    @abc.abstractmethod
    def get_pipeline(self, name_or_id: str) -> PipelineRecord:
        """A pipeline by name or id.

        Raises:
            NotFoundError: no such pipeline.
        """

    @abc.abstractmethod
    def list_pipelines(self) -> list[PipelineRecord]:
        """Every pipeline, by name."""

    @abc.abstractmethod
    def save_deployment(self, deployment_id: str, pipeline_id: str, ir_json: str) -> None:
        """Store a deployment's canonical JSON under its content id (idempotent)."""

    @abc.abstractmethod
    def latest_deployment_id(self, pipeline_id: str) -> str | None:
        """The id of the newest deployment of a pipeline, if any."""

    @abc.abstractmethod
    def get_deployment_json(self, deployment_id: str) -> str:
        """The JSON of a stored deployment.

        Raises:
            NotFoundError: no such deployment in this store.
        """

    # -- ids -------------------------------------------------------------------------
    @abc.abstractmethod
    def resolve_id(self, kind: str, ref: str) -> str:
        """The full id of the record of ``kind`` whose id is ``ref`` or starts with it.

        Every lookup by id (runs, artifacts, step runs; models too) goes
        through this one rule: a prefix of at least :data:`MIN_ID_PREFIX` hex
        digits that exactly one record's id starts with.

        Args:
            kind: a key of :data:`ID_KINDS` (``run``, ``artifact``, ``step_run``).
            ref: a whole id or a prefix of one (case does not matter).

        Raises:
            NotFoundError: no record's id starts with it (or it is not hex, or too short).
            AmbiguousIdError: several do.
        """

    # -- runs ------------------------------------------------------------------------
    @abc.abstractmethod
    def create_run(self, **values: Any) -> RunRecord:
        """Insert a pipeline run (``id``, ``created``, ``extra``, ``parameters`` filled in when absent).

        ``values`` may hold ``tags``: a list of tags the run starts with.

        Raises:
            StoreError: the run name is taken.
        """

    @abc.abstractmethod
    def join_run(self, run_key: str, **values: Any) -> RunRecord:
        """The run with this engine run key, created with ``values`` by whichever caller asks first."""

    @abc.abstractmethod
    def update_run(self, run_id: str, *, only_if_status: str | None = None, **values: Any) -> bool:
        """Change fields of a run; with ``only_if_status`` only while it has that status.

        Returns whether the run was changed.
        """

    @abc.abstractmethod
    def settle_run(
        self, run_id: str, status: str, *, error: str | None = None, running_steps: str | None = None
    ) -> bool:
        """Give a running run its final status (and end time) in one transaction.

        Args:
            status: ``completed``, ``failed`` or ``stopped``.
            error: the one-line reason, for a run that did not complete.
            running_steps: when set, step runs of the run still ``running`` get
                this status and the same error (their process is gone).

        Returns:
            True when this call settled the run; False when it was settled already.
        """

    @abc.abstractmethod
    def get_run(self, run_id: str) -> RunRecord:
        """A run by id, name, unique id prefix, or ``latest`` (the newest run).

        Raises:
            NotFoundError: no such run.
            AmbiguousIdError: the prefix fits several runs.
        """

    @abc.abstractmethod
    def list_runs(
        self,
        pipeline_id: str | None = None,
        limit: int | None = None,
        *,
        status: str | None = None,
        tags: Sequence[str] = (),
    ) -> list[RunRecord]:
        """Runs, newest first, optionally of one pipeline, with one status, or with every tag of ``tags``."""

    @abc.abstractmethod
    def tag_run(self, run_id: str, *, add: Sequence[str] = (), remove: Sequence[str] = ()) -> tuple[str, ...]:
        """Add and remove tags of a run (tags already there, or not there, are fine); returns its tags, sorted.

        Raises:
            NotFoundError: no such run.
        """

    @abc.abstractmethod
    def delete_run(self, run_id: str, *, force: bool = False) -> list[str]:
        """Delete a run with its step runs, tags and artifact links, in one transaction.

        The artifacts it made stay (other runs may use them; ``conveyor gc``
        removes the files of those no run uses). Returns the log file URIs of
        its step runs that no remaining step run refers to (cached steps of
        later runs show the logs of the run that ran them), for the caller to remove.

        Args:
            force: delete it even while it is running.

        Raises:
            NotFoundError: no such run.
            StoreError: it is running (and not ``force``).
        """

    # -- step runs -------------------------------------------------------------------
    @abc.abstractmethod
    def start_step_run(
        self, run_id: str, step_id: str, *, require_running: bool = False, **values: Any
    ) -> StepRunRecord:
        """Record that a step started (or started another attempt); returns its record.

        Args:
            require_running: refuse when the run already has its final status.

        Raises:
            RunSettledError: ``require_running`` and the run has ended.
        """

    @abc.abstractmethod
    def record_step_run(self, run_id: str, step_id: str, *, require_running: bool = False, **values: Any) -> str:
        """Insert a finished step run in one go (a cached or skipped step); returns its id.

        ``values`` may hold ``inputs`` and ``outputs``: ``{name: artifact id}`` links.

        Raises:
            RunSettledError: ``require_running`` and the run has ended.
        """

    @abc.abstractmethod
    def finish_step_run(
        self,
        step_run_id: str,
        status: str,
        *,
        inputs: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        **values: Any,
    ) -> None:
        """Set a step run's final status and link its input and output artifacts."""

    @abc.abstractmethod
    def complete_step_run(
        self,
        step_run_id: str,
        *,
        inputs: Mapping[str, str],
        new_artifacts: Mapping[str, dict[str, Any]],
        require_running: bool = False,
        **values: Any,
    ) -> dict[str, str]:
        """Register a step's new artifacts and mark it completed, in one transaction.

        Returns ``{output name: artifact id}``.

        Raises:
            RunSettledError: ``require_running`` and the run has ended (nothing is registered).
        """

    @abc.abstractmethod
    def get_step_run(self, step_run_id: str) -> StepRunRecord:
        """A step run by id or unique id prefix.

        Raises:
            NotFoundError: no such step run.
        """

    @abc.abstractmethod
    def list_step_runs(self, run_id: str) -> list[StepRunRecord]:
        """The step runs of a run, in the order they started."""

    @abc.abstractmethod
    def step_run_artifacts(self, step_run_id: str, *, inputs: bool) -> dict[str, ArtifactRecord]:
        """``{name: artifact}`` of a step run's inputs or outputs."""

    @abc.abstractmethod
    def outputs_of_step(self, run_id: str, step_id: str) -> dict[str, ArtifactRecord]:
        """Outputs of step ``step_id`` in a run, for resolving downstream inputs.

        Raises:
            NotFoundError: the step has not succeeded in this run.
        """

    @abc.abstractmethod
    def find_cached(self, cache_key: str, limit: int = 5) -> list[tuple[StepRunRecord, dict[str, ArtifactRecord]]]:
        """Completed step runs with this cache key, newest first, with their outputs."""

    # -- hook invocations ------------------------------------------------------------
    @abc.abstractmethod
    def claim_hook_invocation(
        self, pipeline_name: str, run_id: str | None, step_id: str | None, event: str, position: int, hook: str
    ) -> str | None:
        """Record that a hook is about to run; returns the invocation's id, or None when it was claimed already.

        A run's hook (one ``event`` of one step, or of the pipeline when
        ``step_id`` is None, at one ``position`` of its list) is claimed at
        most once, so whichever process supervises the step or the run, the
        hook runs once. Invocations without a run (the run failed before it
        was created) are always recorded.

        Args:
            pipeline_name: the pipeline's name.
            run_id: the run, or None when no run was created.
            step_id: the step the hook belongs to, or None for the pipeline's hooks.
            event: ``success`` or ``failure``.
            position: the hook's index in its list.
            hook: its source, ``module:function``.
        """

    @abc.abstractmethod
    def finish_hook_invocation(self, invocation_id: str, status: str, error: str | None = None) -> None:
        """Record how a claimed hook ended: ``completed``, or ``failed`` with its error line."""

    @abc.abstractmethod
    def list_hook_invocations(
        self, run_id: str | None, *, pipeline_name: str | None = None
    ) -> list[HookInvocationRecord]:
        """The hook invocations of a run, in the order they started.

        With ``run_id`` None: the invocations of ``pipeline_name`` that had no
        run (runs that failed before they were created), newest last.
        """

    def run_url(self, run_id: str) -> str | None:
        """Where a person can look at a run (a server's page), if this store has one."""
        return None

    # -- artifacts -------------------------------------------------------------------
    @abc.abstractmethod
    def create_artifact_version(self, **values: Any) -> ArtifactRecord:
        """Register an artifact whose bytes are complete, numbering its version."""

    @abc.abstractmethod
    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        """An artifact version by id or unique id prefix.

        Raises:
            NotFoundError: no such artifact version.
            AmbiguousIdError: the prefix fits several.
        """

    @abc.abstractmethod
    def list_artifacts(
        self,
        name: str | None = None,
        *,
        pipeline: str | None = None,
        step: str | None = None,
        limit: int | None = None,
        removed: bool = False,
    ) -> list[ArtifactRecord]:
        """Artifact versions, newest first.

        Args:
            name: an artifact name, or the output name of scoped names
                (``model`` finds ``model`` and ``train::fit::model``).
            pipeline: only those made by runs of this pipeline (by name).
            step: only those made by this step call (its id).
            limit: at most this many.
            removed: include those whose files were removed.
        """

    @abc.abstractmethod
    def artifact_consumers(self, artifact_id: str) -> list[StepRunRecord]:
        """Step runs that took this artifact as an input."""

    # -- models ----------------------------------------------------------------------
    @abc.abstractmethod
    def get_or_create_model_version(
        self,
        model: str,
        *,
        version: str | None = None,
        key: str | None = None,
        run_id: str | None = None,
        model_fields: Mapping[str, Any] | None = None,
    ) -> ModelVersionRecord:
        """The model version a run works in, created (with the model) when it does not exist.

        Numbers are given in one transaction per model: concurrent callers
        never get the same number, and no number is skipped.

        Args:
            model: the model's name.
            version: None for a new version (numbered), or a reference: a
                number or ``latest`` (which must exist), an alias, or a version
                name (created when no version has it).
            key: makes creating a new version idempotent: a second call with
                the same key (another step of the same run) gets the same version.
            run_id: the run that creates the version.
            model_fields: ``description``, ``tags`` and ``license`` to record on
                the model when this call creates a version.

        Raises:
            NotFoundError: a number, or ``latest``, that the model does not have.
            ConfigError: a name the naming rule refuses.
        """

    @abc.abstractmethod
    def get_model(self, name_or_id: str) -> ModelRecord:
        """A model by name or id.

        Raises:
            NotFoundError: no such model (the message names the closest ones).
        """

    @abc.abstractmethod
    def list_models(self) -> list[ModelRecord]:
        """Every model, by name."""

    @abc.abstractmethod
    def get_model_version(self, model: str, version: str) -> ModelVersionRecord:
        """A version of a model by number, ``latest``, alias, name or id.

        Raises:
            NotFoundError: no such model or version (the message names the closest ones).
            ConfigError: ``version`` is the id of a version of another model.
        """

    @abc.abstractmethod
    def list_model_versions(self, model: str) -> list[ModelVersionRecord]:
        """The versions of a model, by number.

        Raises:
            NotFoundError: no such model.
        """

    @abc.abstractmethod
    def set_model_alias(
        self, model: str, alias: str, version_id: str | None, *, moved_by: str
    ) -> ModelAliasEventRecord | None:
        """Point an alias of a model at a version (None removes it), recording the move.

        Returns the move, or None when the alias already pointed there.

        Raises:
            ConfigError: the version belongs to another model, or the alias is
                not a valid name (``latest``, all digits, or another version's name).
            NotFoundError: no such model, version, or (removing) alias.
        """

    @abc.abstractmethod
    def list_model_alias_events(self, model: str, alias: str | None = None) -> list[ModelAliasEventRecord]:
        """The moves of a model's aliases (or of one alias), oldest first.

        Raises:
            NotFoundError: no such model.
        """

    @abc.abstractmethod
    def link_model_version(
        self,
        version_id: str,
        *,
        run_id: str,
        step_run_id: str,
        role: str,
        artifacts: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Link a step run, the artifacts it produced or loaded, and what it logged to a model version.

        Args:
            role: ``produced`` or ``consumed`` (:class:`ModelLinkRole`).
            artifacts: ``{name: artifact id}``: the artifact's name (produced) or the input's (consumed).
            metadata: what the step logged.
        """

    @abc.abstractmethod
    def list_model_version_links(
        self, *, version_id: str | None = None, run_id: str | None = None
    ) -> list[ModelVersionLinkRecord]:
        """Links of a model version, or of a run, oldest first."""

    @abc.abstractmethod
    def model_version_artifacts(self, version_id: str) -> dict[str, ArtifactRecord]:
        """``{artifact name: artifact}`` the version's steps produced (the newest of each name)."""

    @abc.abstractmethod
    def runs_using_artifact(self, artifact_id: str) -> list[RunRecord]:
        """Runs that made, read or reused (from the cache) this artifact, newest first."""

    @abc.abstractmethod
    def unreferenced_artifacts(self) -> list[ArtifactRecord]:
        """Artifacts made by runs that no run uses any more (their runs were deleted), files not yet removed.

        Values saved with :func:`conveyor.save_artifact` are never among them.
        """

    @abc.abstractmethod
    def mark_artifact_removed(self, artifact_id: str) -> None:
        """Record that an artifact's files were removed (its record stays: versions are never reused)."""

    # -- stack components and stacks -------------------------------------------------
    @abc.abstractmethod
    def create_component(
        self, type_: str, flavor: str, name: str, config: Mapping[str, Any], *, install: str | None = None
    ) -> ComponentRecord:
        """Register a stack component.

        Args:
            install: how to install the flavor's distribution (:attr:`conveyor.stack.Flavor.install`).

        Raises:
            StoreError: a component of this type and name exists.
        """

    @abc.abstractmethod
    def get_component(self, type_: str, name: str) -> ComponentRecord:
        """A stack component by type and name.

        Raises:
            NotFoundError: no such component.
        """

    @abc.abstractmethod
    def list_components(self, type_: str | None = None) -> list[ComponentRecord]:
        """Registered components, by type and name."""

    @abc.abstractmethod
    def update_component(self, type_: str, name: str, config: Mapping[str, Any]) -> ComponentRecord:
        """Replace a component's config."""

    @abc.abstractmethod
    def delete_component(self, type_: str, name: str) -> None:
        """Delete a component that no stack uses.

        Raises:
            StoreError: a stack uses it.
        """

    @abc.abstractmethod
    def save_stack(self, name: str, component_ids: Mapping[str, str], *, create: bool) -> StackRecord:
        """Create a stack, or replace the members of an existing one."""

    @abc.abstractmethod
    def ensure_stack(self, name: str, components: Mapping[str, tuple[str, str, dict[str, Any]]]) -> None:
        """Create a stack and its missing components in one transaction, unless the stack exists.

        ``components`` maps a component type to ``(name, flavor, config)``.
        """

    @abc.abstractmethod
    def get_stack(self, name: str) -> StackRecord:
        """A stack with its components.

        Raises:
            NotFoundError: no such stack.
        """

    @abc.abstractmethod
    def list_stacks(self) -> list[StackRecord]:
        """Every stack with its components, by name."""

    @abc.abstractmethod
    def delete_stack(self, name: str) -> None:
        """Delete a stack (its components stay)."""

    # -- secrets ---------------------------------------------------------------------
    @abc.abstractmethod
    def secret_store(self, *, folder: Path | None = None) -> SecretStore:
        """The secrets of this store, as seen by this process (its owner and key)."""

    # -- runs whose owner died -------------------------------------------------------
    def fail_dead_runs(self) -> list[RunRecord]:
        """Mark runs whose owner process on this machine is gone (SIGKILL, power loss) as failed.

        Returns the runs this call settled.
        """
        import socket

        from conveyor.stores._liveness import process_is_gone

        host = socket.gethostname()
        settled = []
        for run in self.list_runs(status=RunStatus.RUNNING):
            if run.host != host or run.pid is None or not process_is_gone(run.pid, run.pid_started):
                continue
            if self.settle_run(run.id, RunStatus.FAILED, error=DEAD_OWNER_ERROR, running_steps=RunStatus.FAILED):
                settled.append(run)
        return settled


__all__ = ["DEAD_OWNER_ERROR", "ID_KINDS", "LATEST", "MIN_ID_PREFIX", "MetadataStore", "now"]
