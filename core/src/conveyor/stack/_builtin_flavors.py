"""The artifact store flavors that ship with conveyor: ``local`` and ``fsspec``."""

from __future__ import annotations

import builtins
from typing import Any

from pydantic import BaseModel, ConfigDict

from conveyor.secrets import SecretReference
from conveyor.stack._flavor import ComponentType, Flavor
from conveyor.stores import ArtifactStore, LocalArtifactStore


class LocalArtifactStoreConfig(BaseModel):
    """Config of the ``local`` artifact store."""

    model_config = ConfigDict(extra="forbid")

    path: str
    """The folder artifacts are written to."""


class LocalArtifactStoreFlavor(Flavor):
    """Artifacts in a folder on this machine."""

    type = ComponentType.ARTIFACT_STORE
    name = "local"
    description = "a folder on this machine"

    @property
    def config_class(self) -> builtins.type[BaseModel]:
        return LocalArtifactStoreConfig

    def create(self, name: str, config: Any) -> ArtifactStore:
        return LocalArtifactStore(config.path)


class FsspecArtifactStoreConfig(BaseModel):
    """Config of the ``fsspec`` artifact store."""

    model_config = ConfigDict(extra="forbid")

    path: str
    """A URL fsspec understands (``memory://x``, ``s3://bucket/prefix``, ``gcs://...``)."""
    storage_options: dict[str, Any] = {}
    """Keyword arguments of the fsspec filesystem; credentials only as ``{{secret.key}}`` references."""


class FsspecArtifactStoreFlavor(Flavor):
    """Artifacts at any URL that fsspec can open."""

    type = ComponentType.ARTIFACT_STORE
    name = "fsspec"
    description = "any fsspec URL (install the filesystem's package, e.g. s3fs)"

    @property
    def config_class(self) -> builtins.type[BaseModel]:
        return FsspecArtifactStoreConfig

    def validate_config(self, config: dict[str, Any], *, component: str) -> dict[str, Any]:
        from conveyor.secrets import check_credential_options

        clean = super().validate_config(config, component=component)
        options = clean.get("storage_options") or {}
        check_credential_options(options, f"artifact-store {component!r} (fsspec)", prefix="storage_options")
        return clean

    def create(self, name: str, config: Any) -> ArtifactStore:
        return ArtifactStore(config.path, config.storage_options)


class S3ArtifactStoreConfig(BaseModel):
    """Config of the ``s3`` artifact store (any S3-compatible server)."""

    model_config = ConfigDict(extra="forbid")

    path: str
    """``s3://bucket/prefix``."""
    key: SecretReference | None = None
    """Access key id, as a secret reference such as ``{{aws_creds.aws_access_key_id}}``."""
    secret: SecretReference | None = None
    """Secret access key, as a secret reference."""
    token: SecretReference | None = None
    """Session token, if any, as a secret reference."""
    endpoint_url: str | None = None
    """Endpoint of an S3-compatible server (MinIO, SeaweedFS, ...)."""
    region: str | None = None
    anonymous: bool = False
    """Send unsigned requests (a public bucket, a test server); without key/secret and this, the
    environment's credentials are used (AWS_* variables, ~/.aws, an instance or pod role)."""


class S3ArtifactStoreFlavor(Flavor):
    """Artifacts in S3 or an S3-compatible server, through s3fs."""

    type = ComponentType.ARTIFACT_STORE
    name = "s3"
    description = 'S3 or an S3-compatible server (needs s3fs: pip install "conveyor[s3]")'

    @property
    def config_class(self) -> builtins.type[BaseModel]:
        return S3ArtifactStoreConfig

    def validate_config(self, config: dict[str, Any], *, component: str) -> dict[str, Any]:
        clean = super().validate_config(config, component=component)
        if not str(clean.get("path", "")).startswith("s3://"):
            from conveyor.exceptions import ConfigError

            raise ConfigError(
                f"artifact-store {component!r} (s3): path must start with s3://", "e.g. --path s3://bucket/prefix"
            )
        return clean

    def create(self, name: str, config: Any) -> ArtifactStore:
        import importlib.util

        if importlib.util.find_spec("s3fs") is None:
            from conveyor.exceptions import FlavorNotFoundError

            raise FlavorNotFoundError(
                "the s3 artifact store needs s3fs, which is not installed", 'run: pip install "conveyor[s3]"'
            )
        options: dict[str, Any] = {
            k: v for k, v in (("key", config.key), ("secret", config.secret), ("token", config.token)) if v
        }
        if config.anonymous:
            options["anon"] = True
        client_kwargs = {k: v for k, v in (("endpoint_url", config.endpoint_url), ("region_name", config.region)) if v}
        if client_kwargs:
            options["client_kwargs"] = client_kwargs
        return ArtifactStore(config.path, options)
