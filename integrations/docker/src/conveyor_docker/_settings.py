"""``DockerSettings``: what goes into the image a pipeline or step runs in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from conveyor.ir import PipelineIR, StepIR

SETTINGS_KEY = "docker"
"""The settings namespace (``settings={"docker": DockerSettings(...)}``, ``settings: docker:`` in YAML)."""


class DockerSettings(BaseModel):
    """How to build the image of a pipeline or a step.

    Give it per pipeline (``@pipeline(settings={"docker": DockerSettings(...)})``)
    or per step; a step's settings are merged over the pipeline's, field by
    field. The YAML run config takes the same keys under ``settings: docker:``.
    """

    model_config = ConfigDict(extra="forbid")

    parent_image: str | None = None
    """Image to build on (default: the image builder's ``parent_image``). It needs Python and pip."""
    dockerfile: str | None = None
    """A Dockerfile of yours, built first and used as the parent image."""
    build_context_root: str | None = None
    """Build context of ``dockerfile`` (default: the Dockerfile's folder)."""
    requirements: list[str] | str | None = None
    """Requirement strings, or the path of a requirements file."""
    replicate_local_environment: bool = False
    """Also install every distribution installed here, at the same versions."""
    apt_packages: list[str] = Field(default_factory=list)
    """Debian packages installed with apt-get (the parent image must have apt and a reachable mirror)."""
    environment: dict[str, str] = Field(default_factory=dict)
    """Environment variables set in the image."""
    extra_files: dict[str, str] = Field(default_factory=dict)
    """``{path here: absolute path in the image}``: files or folders copied in."""
    copy_source: bool = True
    """Copy the user's code to ``/app``: in a git checkout the tracked files under the source root, otherwise
    the source root's files; either way without what ``.dockerignore`` and ``.conveyorignore`` match."""
    dockerignore: str | None = None
    """A .dockerignore file to use instead of the source root's (``.conveyorignore`` still applies)."""
    target_repository: str | None = None
    """Repository name under the registry's URI (default: ``conveyor-<pipeline name>``)."""


def _validate(data: dict[str, Any], where: str) -> DockerSettings:
    from conveyor.exceptions import ConfigError

    try:
        return DockerSettings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "settings"
        if err["type"] == "extra_forbidden":
            known = ", ".join(sorted(DockerSettings.model_fields))
            raise ConfigError(f"docker settings of {where}: unknown key {loc!r}", f"keys are: {known}") from None
        raise ConfigError(f"docker settings of {where}: {loc}: {err['msg']}") from None


def settings_for(pipeline: PipelineIR, step: StepIR | None = None) -> DockerSettings:
    """The docker settings of a pipeline, or of one step (its own merged over the pipeline's).

    Raises:
        ConfigError: an unknown key or a bad value.
    """
    from conveyor.stack import parse_settings, step_settings

    if step is None or not step.settings.extra.get(SETTINGS_KEY):
        settings: DockerSettings = parse_settings(
            DockerSettings,
            pipeline.settings.extra.get(SETTINGS_KEY),
            namespace=SETTINGS_KEY,
            where=f"pipeline {pipeline.name!r}",
        )
        return settings
    merged: DockerSettings = step_settings(
        DockerSettings, SETTINGS_KEY, pipeline.settings.extra, step.settings.extra, where=f"step {step.id!r}"
    )
    return merged
