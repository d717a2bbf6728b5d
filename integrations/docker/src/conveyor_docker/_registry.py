"""The ``default`` container registry: any registry speaking the Docker registry v2 API."""

from __future__ import annotations

from typing import Any

from conveyor.exceptions import StackError
from conveyor.stack import StackComponent
from conveyor_docker._client import BuildFailedError, EventLog


class DefaultContainerRegistry(StackComponent):
    """Where images are pushed to and pulled from.

    The config's credentials arrive here already resolved from their secret
    references (by the stack, on the machine that pushes).
    """

    @property
    def uri(self) -> str:
        """``host[:port][/namespace]``."""
        return str(self.config.uri).rstrip("/")

    @property
    def host(self) -> str:
        """``host[:port]``."""
        return self.uri.split("/", 1)[0]

    def auth_config(self) -> dict[str, str] | None:
        """Credentials for docker's push and pull, or None."""
        if not self.config.username and not self.config.password:
            return None
        return {"username": self.config.username or "", "password": self.config.password or ""}

    def _unreachable(self, reason: str) -> StackError:
        return StackError(
            f"container registry {self.name!r} at {self.host} cannot be used: {reason}",
            f"start the registry or fix its URI: conveyor container-registry update {self.name} --uri HOST:PORT/NAMESPACE",
        )

    def remote_digest(self, client: Any, name: str) -> str | None:
        """The digest of ``repository:tag`` in the registry, or None if the registry lacks it.

        Raises:
            StackError: the registry cannot be reached or refuses the credentials.
        """
        import docker

        try:
            data = client.api.inspect_distribution(name, auth_config=self.auth_config())
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as exc:
            text = str(exc.explanation or exc)
            if "manifest unknown" in text or "name unknown" in text or "not found" in text.lower():
                return None
            raise self._unreachable(text.splitlines()[0]) from None
        return str(data.get("Descriptor", {}).get("digest") or "") or None

    def push(self, client: Any, repository: str, tag: str) -> str:
        """Push ``repository:tag``; returns the digest the registry stored.

        Raises:
            BuildFailedError: the push failed; the message ends with docker's log.
        """
        import docker
        import requests

        log = EventLog()
        try:
            log.feed(client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=self.auth_config()))
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            log.error = log.error or str(exc)
        digest = next((str(a["Digest"]) for a in reversed(log.aux) if "Digest" in a), None)
        if log.error or digest is None:
            reason = log.error or "the registry reported no digest"
            raise BuildFailedError(
                f"pushing {repository}:{tag} to container registry {self.name!r} failed: {reason.splitlines()[0]}",
                _push_hint(reason, self),
                log_tail=log.tail(),
            )
        return digest


def _push_hint(reason: str, registry: DefaultContainerRegistry) -> str:
    text = reason.lower()
    if "connection refused" in text or "no such host" in text or "timeout" in text:
        return f"is the registry at {registry.host} running? fix its URI with: conveyor container-registry update {registry.name} --uri ..."
    if "unauthorized" in text or "authentication required" in text or "denied" in text:
        return f"give credentials as secret references: conveyor container-registry update {registry.name} --username '{{{{SECRET.username}}}}' --password '{{{{SECRET.password}}}}'"
    return f"check that the registry at {registry.host} accepts pushes to this repository"
