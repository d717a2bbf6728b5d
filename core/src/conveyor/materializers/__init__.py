"""Materializers: how step outputs are saved to and loaded from the artifact store."""

from conveyor.materializers._base import BaseMaterializer, MaterializerRegistry, registry
from conveyor.materializers._builtin import (
    BuiltInMaterializer,
    BytesMaterializer,
    PickleMaterializer,
    PydanticMaterializer,
)
from conveyor.materializers._trust import is_project_class, project_roots, trusted_materializer, trusted_type

__all__ = [
    "BaseMaterializer",
    "BuiltInMaterializer",
    "BytesMaterializer",
    "MaterializerRegistry",
    "PickleMaterializer",
    "PydanticMaterializer",
    "is_project_class",
    "project_roots",
    "registry",
    "trusted_materializer",
    "trusted_type",
]
