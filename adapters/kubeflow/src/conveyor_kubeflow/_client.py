"""Submitting to a KFP server through ``kfp.Client``, with one-line errors.

Every call that reaches the server goes through :meth:`KfpConnection.call`,
which turns connection failures and refusals into a :class:`StackError`
that names the host and says what to check; nothing here reports a failed
request as success.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from conveyor.exceptions import ConfigError, StackError

if TYPE_CHECKING:
    from conveyor.ir import Schedule
    from conveyor_kubeflow._flavor import KubeflowOrchestratorConfig

T = TypeVar("T")

HEALTHZ_PATH = "/apis/v2beta1/healthz"
FINISHED_STATES = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"})
"""KFP v2 run states after which nothing more happens."""


class KfpConnection:
    """A checked connection to one KFP API.

    Args:
        config: the orchestrator's config (``token`` already resolved).
        component: the orchestrator's name, for messages.
        timeout: seconds before the health check gives up.
    """

    def __init__(self, config: KubeflowOrchestratorConfig, component: str, timeout: float = 15.0) -> None:
        assert config.host is not None
        try:
            import kfp  # noqa: F401
        except ImportError:
            raise ConfigError(
                "submitting to KFP needs the kfp package, which is not installed",
                'run in a conveyor clone: pip install ./core "./adapters/kubeflow[kfp]"',
            ) from None
        self.config = config
        self.host = config.host
        self.component = component
        self.timeout = timeout
        self._client: Any = None

    # -- errors ------------------------------------------------------------------------------
    def _refused(self, status: int, reason: str, detail: str = "") -> StackError:
        if status in (401, 403):
            return StackError(
                f"KFP at {self.host} refused the credentials (HTTP {status} {reason})",
                f"check the secret that the token of orchestrator {self.component!r} refers to, and its access",
            )
        return StackError(
            f"KFP at {self.host} answered HTTP {status} {reason}{': ' + detail if detail else ''}",
            "check the orchestrator's host and the KFP server's logs",
        )

    def _unreachable(self, reason: object) -> StackError:
        return StackError(
            f"cannot reach KFP at {self.host}: {reason}",
            f"check that the server runs and the host is right: conveyor orchestrator update {self.component} --host URL",
        )

    def call(self, what: Callable[[], T]) -> T:
        """Run one request of ``kfp.Client``, turning its failures into one-line errors.

        Raises:
            StackError: the server cannot be reached, refuses the credentials, or answers with an error.
        """
        import kfp_server_api
        import urllib3

        try:
            return what()
        except kfp_server_api.ApiException as exc:
            if exc.status in (0, None):
                raise self._unreachable(exc.reason) from None
            raise self._refused(exc.status, exc.reason or "", _detail(exc.body)) from None
        except urllib3.exceptions.MaxRetryError as exc:
            raise self._unreachable(exc.reason or exc) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unreachable(exc) from None

    # -- connecting --------------------------------------------------------------------------
    def check(self) -> None:
        """Ask the server's health endpoint, with the credentials, before anything else.

        Raises:
            StackError: unreachable, refused, or not a KFP v2 API.
        """
        request = urllib.request.Request(self.host + HEALTHZ_PATH)
        if self.config.token:
            request.add_header("Authorization", f"Bearer {self.config.token}")
        # No proxy from the environment: kfp.Client does not use one either.
        handlers: list[Any] = [urllib.request.ProxyHandler({})]
        if self.host.startswith("https://"):
            import ssl

            context = ssl.create_default_context(cafile=self.config.ssl_ca_cert)
            if not self.config.verify_ssl:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            handlers.append(urllib.request.HTTPSHandler(context=context))
        opener = urllib.request.build_opener(*handlers)
        try:
            with opener.open(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise self._refused(exc.code, exc.reason, _detail(exc.read())) from None
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(getattr(exc, "reason", exc)) from None
        try:
            json.loads(body or b"{}")
        except ValueError:
            raise StackError(
                f"{self.host} answered its health check with something other than KFP's JSON",
                "give the KFP API's address (the one kfp.Client(host=...) takes)",
            ) from None

    @property
    def client(self) -> Any:
        """The ``kfp.Client`` (made on first use)."""
        if self._client is None:
            import kfp

            with warnings.catch_warnings():
                # kfp warns on every client that it needs a v2 server; this adapter only talks to v2.
                warnings.simplefilter("ignore", FutureWarning)
                self._client = self.call(
                    lambda: kfp.Client(
                        host=self.host,
                        existing_token=self.config.token,
                        namespace=self.config.namespace or "kubeflow",
                        ssl_ca_cert=self.config.ssl_ca_cert,
                        verify_ssl=self.config.verify_ssl,
                    )
                )
        return self._client

    # -- submitting --------------------------------------------------------------------------
    def submit_run(self, package: str, *, run_name: str, experiment: str) -> str:
        """Create a run from a spec file; returns KFP's run id."""
        result = self.call(
            lambda: self.client.create_run_from_pipeline_package(
                package,
                run_name=run_name,
                experiment_name=experiment,
                namespace=self.config.namespace,
                pipeline_root=self.config.pipeline_root,
                service_account=self.config.service_account,
            )
        )
        run_id = getattr(result, "run_id", None)
        if not run_id:
            raise StackError(
                f"KFP at {self.host} accepted the run but gave no run id",
                "check the KFP server's version (conveyor needs KFP 2)",
            )
        return str(run_id)

    def submit_recurring_run(self, package: str, *, name: str, experiment: str, schedule: Schedule) -> str:
        """Create a recurring run from a spec file; returns its id."""
        trigger = recurring_trigger(schedule)
        experiment_id = self.call(
            lambda: self.client.create_experiment(name=experiment, namespace=self.config.namespace)
        ).experiment_id
        result = self.call(
            lambda: self.client.create_recurring_run(
                experiment_id=experiment_id,
                job_name=name,
                pipeline_package_path=package,
                pipeline_root=self.config.pipeline_root,
                service_account=self.config.service_account,
                enabled=True,
                **trigger,
            )
        )
        recurring_id = getattr(result, "recurring_run_id", None)
        if not recurring_id:
            raise StackError(
                f"KFP at {self.host} accepted the recurring run but gave no id",
                "check the KFP server's version (conveyor needs KFP 2)",
            )
        return str(recurring_id)

    def run_state(self, run_id: str) -> tuple[str, str | None]:
        """``(state, error message)`` of a run."""
        run = self.call(lambda: self.client.get_run(run_id))
        state = str(getattr(run, "state", None) or "PENDING").upper()
        error = getattr(run, "error", None)
        message = getattr(error, "message", None) if error is not None else None
        return state, message


def recurring_trigger(schedule: Schedule) -> dict[str, Any]:
    """Keyword arguments of ``create_recurring_run`` for a conveyor schedule.

    KFP's cron has a seconds field first: a five-field expression runs at second 0.

    Raises:
        ConfigError: an interval KFP cannot take (not whole seconds) or a bad cron expression.
    """
    out: dict[str, Any] = {"no_catchup": not schedule.catchup}
    if schedule.cron is not None:
        fields = schedule.cron.split()
        if len(fields) == 5:
            fields = ["0", *fields]
        if len(fields) != 6:
            raise ConfigError(
                f"cron expression {schedule.cron!r} has {len(fields)} fields",
                "give five (minute hour day month weekday) or six (with seconds first)",
            )
        out["cron_expression"] = " ".join(fields)
    else:
        seconds = schedule.interval_seconds
        assert seconds is not None
        if seconds != int(seconds):
            raise ConfigError(f"KFP runs schedules in whole seconds, not every {seconds:g} s", "give a whole number")
        out["interval_second"] = int(seconds)
    if schedule.start_date is not None:
        out["start_time"] = _rfc3339(schedule.start_date)
    if schedule.end_date is not None:
        out["end_time"] = _rfc3339(schedule.end_date)
    return out


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _detail(body: Any) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        return str(body).strip().splitlines()[0][:200] if str(body).strip() else ""
    if isinstance(data, dict):
        message = data.get("message") or data.get("error") or ""
        return str(message).splitlines()[0][:200] if message else ""
    return ""
