"""Names shared across conveyor: entry point groups and environment variables."""

FLAVORS_GROUP = "conveyor.flavors"
"""Entry point group of stack component flavors, named ``<component_type>.<flavor>``."""

MATERIALIZERS_GROUP = "conveyor.materializers"
"""Entry point group of materializers, named after the type they handle."""

REPOSITORY_DIR = ".conveyor"
"""The folder that marks a conveyor repository (found from any subfolder)."""

ENV_REPOSITORY = "CONVEYOR_REPOSITORY"
"""A folder holding (or to hold) ``.conveyor/``; skips the upward search."""

ENV_STORE_URL = "CONVEYOR_STORE_URL"
"""SQLAlchemy URL of the metadata store; overrides the repository config."""

ENV_SERVER = "CONVEYOR_SERVER"
"""URL of a conveyor server to use as the metadata store (overrides the active profile)."""

ENV_API_KEY = "CONVEYOR_API_KEY"
"""The credential sent to ``CONVEYOR_SERVER``: a service account's API key, or a run's step token."""

ENV_PROFILE = "CONVEYOR_PROFILE"
"""Name of a profile to use instead of the active one."""

ENV_CONFIG_DIR = "CONVEYOR_CONFIG_DIR"
"""The user's conveyor folder (profiles and their credentials); default ``~/.config/conveyor``."""

ENV_SOURCE_ROOT = "CONVEYOR_SOURCE_ROOT"
"""Folder that step processes put first on ``sys.path`` to import user code."""

ENV_STACK = "CONVEYOR_STACK"
"""Name of a stack to use instead of the active one."""

ENV_STEP_ENTRYPOINT = "CONVEYOR_STEP_ENTRYPOINT"
"""Set inside step processes: calling a pipeline there does nothing, and the
process does not judge other processes' runs (it may be in a container, where
this machine's PIDs are not visible)."""

ENV_PARENT_PID = "CONVEYOR_PARENT_PID"
"""Set for step processes of the local orchestrator: a step process ends itself (and
its children) when the process that started it is gone, so a killed driver leaves
nothing running."""
