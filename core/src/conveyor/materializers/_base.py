"""``BaseMaterializer`` and the registry that picks one per type."""

from __future__ import annotations

import os
import sys
from typing import IO, TYPE_CHECKING, Any, ClassVar

from conveyor.constants import MATERIALIZERS_GROUP
from conveyor.exceptions import MaterializerError

if TYPE_CHECKING:
    from conveyor.stores import ArtifactStore


class BaseMaterializer:
    """Saves values of some types to an artifact folder and loads them back.

    Subclass it, list the types in ``ASSOCIATED_TYPES`` and implement
    :meth:`save` and :meth:`load`; a subclass with associated types is
    registered for them when its class is defined.

    Attributes:
        uri: the folder this artifact's files go in.
        artifact_store: the store the folder is in (``open``, ``local_path``).
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = ()
    ARTIFACT_TYPE: ClassVar[str] = "data"
    UNSAFE: ClassVar[bool] = False
    """Loading runs code the artifact's files carry (pickle): only where the loader opted in."""

    def __init__(self, uri: str, artifact_store: ArtifactStore) -> None:
        self.uri = uri
        self.artifact_store = artifact_store

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for tp in cls.__dict__.get("ASSOCIATED_TYPES", ()):
            registry.register(tp, cls)

    # -- to implement ----------------------------------------------------------------
    def load(self, data_type: type) -> Any:
        """Read the artifact back as an instance of ``data_type``."""
        raise NotImplementedError

    def save(self, data: Any) -> None:
        """Write ``data`` into :attr:`uri`."""
        raise NotImplementedError

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        """JSON metadata shown with the artifact version (shape, rows, ...)."""
        return {}

    def save_visualizations(self, data: Any) -> dict[str, str]:
        """Write human views of the artifact; returns ``{uri: kind}`` (kind: html, png, markdown, csv)."""
        return {}

    # -- helpers ---------------------------------------------------------------------
    def path(self, name: str) -> str:
        """The uri of a file inside this artifact's folder."""
        return self.artifact_store.join(self.uri, name) if "://" in self.uri else os.path.join(self.uri, name)

    def open(self, name: str, mode: str = "rb") -> IO[Any]:
        """Open a file inside this artifact's folder."""
        return self.artifact_store.open(self.path(name), mode)


def _qualname(tp: type) -> str:
    return f"{tp.__module__}.{tp.__qualname__}"


class MaterializerRegistry:
    """Finds the materializer for a type: registered subclasses first, then entry points.

    Entry points of the group ``conveyor.materializers`` are named after the
    type they handle (``numpy.ndarray = conveyor_numpy:NumpyMaterializer``), so a
    plugin is imported only when a value of its type is saved.
    """

    def __init__(self) -> None:
        self._by_type: dict[type, type[BaseMaterializer]] = {}
        self._entry_points: dict[str, Any] | None = None
        self._failed: dict[str, str] = {}

    def register(self, tp: type, materializer: type[BaseMaterializer]) -> None:
        """Use ``materializer`` for ``tp`` and its subclasses (later registrations win)."""
        self._by_type[tp] = materializer

    def _discover(self) -> dict[str, Any]:
        if self._entry_points is None:
            from importlib.metadata import entry_points

            self._entry_points = {ep.name: ep for ep in entry_points(group=MATERIALIZERS_GROUP)}
        return self._entry_points

    def entry_points(self) -> dict[str, Any]:
        """The installed materializer entry points, by the type name they handle."""
        return dict(self._discover())

    def known(self) -> list[type[BaseMaterializer]]:
        """Materializer classes registered in this process (by subclassing or loaded from entry points)."""
        return list(set(self._by_type.values()))

    def _from_entry_point(self, name: str) -> type[BaseMaterializer] | None:
        ep = self._discover().get(name)
        if ep is None or name in self._failed:
            return None
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not break the core
            dist = getattr(getattr(ep, "dist", None), "name", "an installed package")
            self._failed[name] = f"{dist}: {exc}"
            print(f"conveyor: skipped materializer plugin {ep.value} from {dist}: {exc}", file=sys.stderr)
            return None
        return cls

    def find(self, tp: Any) -> type[BaseMaterializer] | None:
        """The materializer for a type, or None."""
        if not isinstance(tp, type):
            return None
        for klass in tp.__mro__:
            found = self._by_type.get(klass)
            if found is not None:
                return found
            found = self._from_entry_point(_qualname(klass))
            if found is not None:
                self._by_type.setdefault(klass, found)
                return found
        return None

    def get(self, tp: Any, *, where: str) -> type[BaseMaterializer]:
        """The materializer for a type, or a MaterializerError that says how to add one."""
        found = self.find(tp)
        if found is None:
            name = _qualname(tp) if isinstance(tp, type) else repr(tp)
            raise MaterializerError(
                f"no materializer for {where} of type {name}",
                "subclass conveyor.BaseMaterializer with ASSOCIATED_TYPES=(YourType,), pass "
                "output_materializers= to the step, or opt in to conveyor.materializers.PickleMaterializer",
            )
        return found


registry = MaterializerRegistry()
