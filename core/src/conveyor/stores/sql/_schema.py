"""Tables of the metadata store (SQLAlchemy Core).

The migrations in ``conveyor/stores/migrations`` create exactly these; a
test compares the two. Add a column here and a migration there together.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

metadata = sa.MetaData()

_ID = 32  # uuid4().hex, or a content hash cut to 32 hex digits
_NAME = 255
# MySQL/MariaDB keep whole seconds unless told otherwise: runs started in the same second
# would tie, and "latest" would pick one of them at random.
_PRECISE_TIME = sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

pipelines = sa.Table(
    "pipelines",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("name", sa.String(_NAME), nullable=False, unique=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("pipeline_id", sa.String(_ID), sa.ForeignKey("pipelines.id"), nullable=False, index=True),
    sa.Column("ir", sa.Text().with_variant(sa.Text(4294967295), "mysql", "mariadb"), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)

pipeline_runs = sa.Table(
    "pipeline_runs",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("name", sa.String(_NAME), nullable=False, unique=True),
    sa.Column("pipeline_id", sa.String(_ID), sa.ForeignKey("pipelines.id"), nullable=False, index=True),
    sa.Column("deployment_id", sa.String(_ID), sa.ForeignKey("deployments.id"), nullable=False),
    sa.Column("run_key", sa.String(_NAME), nullable=True, unique=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created", _PRECISE_TIME, nullable=False, index=True),
    sa.Column("started", sa.DateTime(timezone=True), nullable=True),
    sa.Column("ended", sa.DateTime(timezone=True), nullable=True),
    sa.Column("parameters", sa.JSON(), nullable=False),
    sa.Column("stack_name", sa.String(_NAME), nullable=False),
    sa.Column("orchestrator", sa.String(_NAME), nullable=False),
    sa.Column("orchestrator_run_id", sa.String(_NAME), nullable=True),
    sa.Column("code_commit", sa.String(64), nullable=True),
    sa.Column("code_dirty", sa.Boolean(), nullable=True),
    sa.Column("host", sa.String(_NAME), nullable=True),
    sa.Column("pid", sa.Integer(), nullable=True),
    # A start time in seconds since the epoch needs a double: MySQL's FLOAT is single precision
    # (to ~2 minutes), and a live driver would look like one that was replaced.
    sa.Column("pid_started", sa.Float().with_variant(sa.Double(), "mysql", "mariadb"), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("extra", sa.JSON(), nullable=False),
)

run_tags = sa.Table(
    "run_tags",
    metadata,
    sa.Column("run_id", sa.String(_ID), sa.ForeignKey("pipeline_runs.id"), primary_key=True),
    sa.Column("tag", sa.String(_NAME), primary_key=True),
    sa.Index("ix_run_tags_tag", "tag"),
)

step_runs = sa.Table(
    "step_runs",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("run_id", sa.String(_ID), sa.ForeignKey("pipeline_runs.id"), nullable=False),
    sa.Column("step_id", sa.String(_NAME), nullable=False),
    sa.Column("step_name", sa.String(_NAME), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("cached", sa.Boolean(), nullable=False),
    sa.Column("cache_key", sa.String(64), nullable=True, index=True),
    sa.Column("original_step_run_id", sa.String(_ID), nullable=True),
    sa.Column("started", sa.DateTime(timezone=True), nullable=True),
    sa.Column("ended", sa.DateTime(timezone=True), nullable=True),
    sa.Column("source", sa.String(1024), nullable=False),
    sa.Column("code_hash", sa.String(64), nullable=False),
    sa.Column("parameters", sa.JSON(), nullable=False),
    sa.Column("logs_uri", sa.String(2048), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("image", sa.String(1024), nullable=True),
    # What the step logged with log_metadata(); NULL when it logged nothing.
    sa.Column("metadata", sa.JSON(), nullable=True),
    sa.UniqueConstraint("run_id", "step_id", name="uq_step_runs_run_step"),
)

artifact_versions = sa.Table(
    "artifact_versions",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("name", sa.String(_NAME), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("uri", sa.String(2048), nullable=False),
    sa.Column("data_type", sa.String(1024), nullable=False),
    sa.Column("materializer", sa.String(1024), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("producer_step_run_id", sa.String(_ID), sa.ForeignKey("step_runs.id"), nullable=True, index=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("metadata", sa.JSON(), nullable=False),
    sa.Column("visualizations", sa.JSON(), nullable=False),
    # {relative file name: size}: a cache hit needs every file still there, whole.
    sa.Column("manifest", sa.JSON(), nullable=True),
    # Where it was made, kept when its run is deleted: listing and gc filter on them without joins.
    sa.Column("pipeline_name", sa.String(_NAME), nullable=True, index=True),
    sa.Column("step_id", sa.String(_NAME), nullable=True),
    # When its files were removed (conveyor gc, artifact delete); the record stays, so versions are never reused.
    sa.Column("removed", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("name", "version", name="uq_artifact_versions_name_version"),
)

step_run_inputs = sa.Table(
    "step_run_inputs",
    metadata,
    sa.Column("step_run_id", sa.String(_ID), sa.ForeignKey("step_runs.id"), primary_key=True),
    sa.Column("name", sa.String(_NAME), primary_key=True),
    sa.Column("artifact_id", sa.String(_ID), sa.ForeignKey("artifact_versions.id"), nullable=False, index=True),
)

step_run_outputs = sa.Table(
    "step_run_outputs",
    metadata,
    sa.Column("step_run_id", sa.String(_ID), sa.ForeignKey("step_runs.id"), primary_key=True),
    sa.Column("name", sa.String(_NAME), primary_key=True),
    sa.Column("artifact_id", sa.String(_ID), sa.ForeignKey("artifact_versions.id"), nullable=False, index=True),
)

stack_components = sa.Table(
    "stack_components",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("flavor", sa.String(_NAME), nullable=False),
    sa.Column("name", sa.String(_NAME), nullable=False),
    sa.Column("config", sa.JSON(), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
    # How to install the flavor's distribution: a machine without it is told what to run.
    sa.Column("install", sa.String(1024), nullable=True),
    sa.UniqueConstraint("type", "name", name="uq_stack_components_type_name"),
)

stacks = sa.Table(
    "stacks",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("name", sa.String(_NAME), nullable=False, unique=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
)

stack_members = sa.Table(
    "stack_members",
    metadata,
    sa.Column("stack_id", sa.String(_ID), sa.ForeignKey("stacks.id"), primary_key=True),
    sa.Column("component_type", sa.String(64), primary_key=True),
    sa.Column("component_id", sa.String(_ID), sa.ForeignKey("stack_components.id"), nullable=False, index=True),
)

secrets = sa.Table(
    "secrets",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("name", sa.String(_NAME), nullable=False, index=True),
    sa.Column("owner", sa.String(_NAME), nullable=False),
    sa.Column("shared", sa.Boolean(), nullable=False),
    sa.Column("schema_name", sa.String(64), nullable=False),
    sa.Column("key_names", sa.JSON(), nullable=False),
    # A Fernet token of the values; never the values themselves.
    sa.Column("ciphertext", sa.Text(), nullable=False),
    sa.Column("key_id", sa.String(_ID), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("owner", "name", name="uq_secrets_owner_name"),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("name", sa.String(_NAME), nullable=False, unique=True),
    sa.Column("description", sa.Text(), nullable=True),
    sa.Column("tags", sa.JSON(), nullable=False),
    sa.Column("license", sa.String(_NAME), nullable=True),
    # The newest version's number. Creating a version increments it first, which locks
    # the row: creators of one model queue there, so numbers are never taken twice or skipped.
    sa.Column("latest_version", sa.Integer(), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("model_id", sa.String(_ID), sa.ForeignKey("models.id"), nullable=False),
    sa.Column("number", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(_NAME), nullable=True),
    sa.Column("run_id", sa.String(_ID), sa.ForeignKey("pipeline_runs.id"), nullable=True, index=True),
    # Who asked for a new version (a run, or one step of it): asking again gets the same one.
    sa.Column("creation_key", sa.String(_NAME), nullable=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("model_id", "number", name="uq_model_versions_model_number"),
    sa.UniqueConstraint("model_id", "name", name="uq_model_versions_model_name"),
    sa.UniqueConstraint("model_id", "creation_key", name="uq_model_versions_model_key"),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("model_id", sa.String(_ID), sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("alias", sa.String(_NAME), primary_key=True),
    sa.Column("model_version_id", sa.String(_ID), sa.ForeignKey("model_versions.id"), nullable=False, index=True),
    sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
)

model_alias_events = sa.Table(
    "model_alias_events",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("model_id", sa.String(_ID), sa.ForeignKey("models.id"), nullable=False),
    # The move's place in its model's history (timestamps may tie: MySQL keeps whole seconds).
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("alias", sa.String(_NAME), nullable=False),
    sa.Column("from_version_id", sa.String(_ID), sa.ForeignKey("model_versions.id"), nullable=True),
    sa.Column("to_version_id", sa.String(_ID), sa.ForeignKey("model_versions.id"), nullable=True),
    sa.Column("moved_by", sa.String(_NAME), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("model_id", "seq", name="uq_model_alias_events_model_seq"),
)

model_version_links = sa.Table(
    "model_version_links",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("model_version_id", sa.String(_ID), sa.ForeignKey("model_versions.id"), nullable=False, index=True),
    sa.Column("run_id", sa.String(_ID), sa.ForeignKey("pipeline_runs.id"), nullable=False, index=True),
    sa.Column("step_run_id", sa.String(_ID), sa.ForeignKey("step_runs.id"), nullable=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("artifact_id", sa.String(_ID), sa.ForeignKey("artifact_versions.id"), nullable=True),
    sa.Column("name", sa.String(_NAME), nullable=True),
    sa.Column("metadata", sa.JSON(), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)

hook_invocations = sa.Table(
    "hook_invocations",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("run_id", sa.String(_ID), sa.ForeignKey("pipeline_runs.id"), nullable=True),
    sa.Column("pipeline_name", sa.String(_NAME), nullable=False),
    # "" for the pipeline's own hooks: a NULL would not be unique, and each hook is claimed once.
    sa.Column("step_id", sa.String(_NAME), nullable=False),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("position", sa.Integer(), nullable=False),
    sa.Column("hook", sa.String(1024), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended", sa.DateTime(timezone=True), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.UniqueConstraint("run_id", "step_id", "event", "position", name="uq_hook_invocations_claim"),
    sa.Index("ix_hook_invocations_pipeline_name", "pipeline_name"),
)

# -- a conveyor server's own: users and service accounts, credentials, failed logins --------
users = sa.Table(
    "server_users",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    sa.Column("name", sa.String(_NAME), nullable=False, unique=True),
    # "user" (logs in with a password) or "service" (an account for CI and workers: API keys only).
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(_NAME), nullable=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)

credentials = sa.Table(
    "server_credentials",
    metadata,
    sa.Column("id", sa.String(_ID), primary_key=True),
    # SHA-256 of the token: tokens are 256 random bits, so a fast hash keeps lookups to one index probe.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    # "session" (a login), "api_key" (a service account's key) or "run" (a step token scoped to one run).
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("user_id", sa.String(_ID), sa.ForeignKey("server_users.id"), nullable=False, index=True),
    sa.Column("run_id", sa.String(_ID), nullable=True, index=True),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires", sa.DateTime(timezone=True), nullable=True),
)

login_failures = sa.Table(
    "server_login_failures",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(_NAME), nullable=False, index=True),
    sa.Column("address", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
)
