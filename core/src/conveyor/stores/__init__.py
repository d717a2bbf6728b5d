"""Where conveyor keeps things: artifact bytes (fsspec) and metadata (one store interface).

:class:`MetadataStore` is the interface every reader and writer of metadata
uses; :func:`open_store` opens the implementation a URL names (a SQL
database, or a conveyor server over REST) and :func:`store_target` says which
one this process uses (environment, profile, repository). SQLAlchemy is
imported only by code that opens a SQL store.
"""

from conveyor.stores._artifact_store import ArtifactStore, LocalArtifactStore
from conveyor.stores._interface import DEAD_OWNER_ERROR, ID_KINDS, LATEST, MIN_ID_PREFIX, MetadataStore
from conveyor.stores._liveness import current_process_identity, process_is_gone
from conveyor.stores._open import local_store_folders, open_store, url_without_password
from conveyor.stores._profiles import (
    LOCAL_PROFILE,
    Profile,
    Profiles,
    StoreTarget,
    config_dir,
    is_server_url,
    store_target,
)
from conveyor.stores._records import (
    ArtifactRecord,
    ComponentRecord,
    HookInvocationRecord,
    ModelAliasEventRecord,
    ModelLinkRole,
    ModelRecord,
    ModelVersionLinkRecord,
    ModelVersionRecord,
    PipelineRecord,
    RunRecord,
    RunStatus,
    StackRecord,
    StepRunRecord,
    new_id,
    now,
)

__all__ = [
    "DEAD_OWNER_ERROR",
    "ID_KINDS",
    "LATEST",
    "LOCAL_PROFILE",
    "MIN_ID_PREFIX",
    "ArtifactRecord",
    "ArtifactStore",
    "ComponentRecord",
    "HookInvocationRecord",
    "LocalArtifactStore",
    "MetadataStore",
    "ModelAliasEventRecord",
    "ModelLinkRole",
    "ModelRecord",
    "ModelVersionLinkRecord",
    "ModelVersionRecord",
    "PipelineRecord",
    "Profile",
    "Profiles",
    "RunRecord",
    "RunStatus",
    "StackRecord",
    "StepRunRecord",
    "StoreTarget",
    "config_dir",
    "current_process_identity",
    "is_server_url",
    "local_store_folders",
    "new_id",
    "now",
    "open_store",
    "process_is_gone",
    "store_target",
    "url_without_password",
]
