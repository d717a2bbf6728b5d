"""The apprise alerter, through Apprise's json:// service, against a recording HTTP server."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from conveyor import Client
from conveyor.exceptions import AlerterError, ConfigError, StepFailedError
from conveyor.stack import flavors
from conveyor_testing.http_sink import HttpSink


def _register(url: str) -> None:
    Client().create_secret("alerts", {"sink": url})
    Client().register_component("alerter", "many", "apprise", {"urls": ["{{alerts.sink}}"], "title": "ml"})


@pytest.mark.integration
def test_a_hook_notifies_through_apprise(repo: Path, http_sink: HttpSink) -> None:
    _register(http_sink.url.replace("http://", "json://") + "/notify")
    Client().update_stack("default", {"alerter": "many"})
    (repo / "apprise_pipe.py").write_text(
        textwrap.dedent("""
        from conveyor import pipeline, step
        from conveyor.alerters import alert_on_failure

        @step(enable_cache=False)
        def fails() -> int:
            raise ValueError("boom")

        @pipeline(on_failure=alert_on_failure)
        def noisy() -> None:
            fails()
    """)
    )
    sys.modules.pop("apprise_pipe", None)
    with pytest.raises(StepFailedError):
        importlib.import_module("apprise_pipe").noisy()
    [request] = http_sink.wait_for(1)
    body = request.json()
    run = Client().get_pipeline("noisy").last_run
    assert request.path == "/notify"
    assert body["title"] == "ml"
    assert body["message"] == f"Run {run.name!r} of pipeline 'noisy' failed: step 'fails' failed: ValueError: boom"
    assert [(h.step_id, h.status) for h in run.hooks] == [(None, "completed")]


@pytest.mark.integration
def test_a_service_that_refuses_is_one_line_without_its_url(repo: Path, http_sink: HttpSink) -> None:
    _register(http_sink.url.replace("http://", "json://") + "/notify?token=hush-hush")
    http_sink.status = 500
    alerter = flavors.get("alerter", "apprise").build("many", Client().store.get_component("alerter", "many").config)
    with pytest.raises(AlerterError, match="a service did not take the message") as info:
        alerter.post("hello")
    assert "hush-hush" not in str(info.value)


def test_urls_are_secret_references_only(repo: Path) -> None:
    with pytest.raises(ConfigError, match="holds a credential"):
        Client().register_component("alerter", "x", "apprise", {"urls": ["discord://id/token"]})
    with pytest.raises(ConfigError, match="urls"):
        Client().register_component("alerter", "x", "apprise", {"urls": []})


def test_an_unknown_apprise_url_is_refused_without_showing_it(repo: Path) -> None:
    _register("nosuchservice://secret-part")
    alerter = flavors.get("alerter", "apprise").build("many", Client().store.get_component("alerter", "many").config)
    with pytest.raises(AlerterError, match="URL 1 of 1 is not one Apprise knows") as info:
        alerter.post("hello")
    assert "secret-part" not in str(info.value)


@pytest.mark.integration
def test_apprise_cannot_ask(repo: Path, http_sink: HttpSink) -> None:
    _register(http_sink.url.replace("http://", "json://"))
    alerter = flavors.get("alerter", "apprise").build("many", Client().store.get_component("alerter", "many").config)
    with pytest.raises(AlerterError, match="cannot ask questions"):
        alerter.ask("deploy?")


def test_the_flavors_are_listed(repo: Path) -> None:
    names = [f.name for f in flavors.all("alerter")]
    assert names == ["apprise", "slack", "webhook"]
