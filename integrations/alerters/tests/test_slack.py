"""The slack alerter against a local server that speaks the Slack Web API endpoints it calls."""

from __future__ import annotations

import importlib
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor import Client
from conveyor.exceptions import AlerterError, ConfigError, StepFailedError
from conveyor.stack import flavors
from conveyor_alerters import reply_verdict
from conveyor_testing.slack_api import BOT_USER, FakeSlack
from conveyor_testing.strategies import hostile_text


def _alerter(repo: Path, fake: FakeSlack, token: str | None = None, **options: object) -> object:
    Client().create_secret("slack", {"token": token or fake.token})
    config = {
        "token": "{{slack.token}}",
        "channel": "#ml",
        "base_url": fake.base_url,
        "poll_interval": 0.05,
        **options,
    }
    Client().register_component("alerter", "team", "slack", config)
    return flavors.get("alerter", "slack").build("team", Client().store.get_component("alerter", "team").config)


@pytest.mark.integration
def test_post_sends_the_message_to_the_channel(repo: Path, fake_slack: FakeSlack) -> None:
    alerter = _alerter(repo, fake_slack)
    alerter.post("training done: <!channel> & 3 > 2")
    [message] = fake_slack.messages
    assert message.text == "training done: &lt;!channel&gt; &amp; 3 &gt; 2"
    assert [m for m, _ in fake_slack.calls] == ["chat.postMessage"]
    assert fake_slack.calls[0][1]["channel"] == "#ml"


@pytest.mark.parametrize(
    ("answer", "in_thread", "expected"),
    [("approve", True, True), ("Reject!", True, False), ("*LGTM*", False, True), ("no", False, False)],
)
@pytest.mark.integration
def test_ask_waits_for_a_persons_answer(
    repo: Path, fake_slack: FakeSlack, answer: str, in_thread: bool, expected: bool
) -> None:
    alerter = _alerter(repo, fake_slack)
    fake_slack.answer_next(answer, after=0.3, in_thread=in_thread)
    started = time.monotonic()
    assert alerter.ask("Deploy churn v7?", timeout=10) is expected
    assert 0.3 <= time.monotonic() - started < 5
    question = fake_slack.messages[0]
    assert question.text.startswith("Deploy churn v7?\nReply in this thread with *approve* or *reject*")


@pytest.mark.integration
def test_ask_without_an_answer_is_a_no_after_the_timeout(repo: Path, fake_slack: FakeSlack) -> None:
    alerter = _alerter(repo, fake_slack)
    fake_slack.answer_next("maybe later", after=0.0)  # not an answer
    started = time.monotonic()
    assert alerter.ask("Deploy?", timeout=0.5) is False
    assert 0.5 <= time.monotonic() - started < 3


@pytest.mark.integration
def test_a_token_slack_refuses_is_one_line_without_the_token(repo: Path, fake_slack: FakeSlack) -> None:
    alerter = _alerter(repo, fake_slack, token="xoxb-wrong-token-123")
    with pytest.raises(AlerterError, match="Slack refused the message: invalid_auth") as info:
        alerter.post("hello")
    assert "xoxb" not in str(info.value)
    assert fake_slack.messages == []


@pytest.mark.integration
def test_slack_that_cannot_be_reached_is_one_line(repo: Path, fake_slack: FakeSlack) -> None:
    alerter = _alerter(repo, fake_slack, base_url="http://127.0.0.1:9/api/")
    with pytest.raises(AlerterError, match="cannot reach Slack for the message"):
        alerter.post("hello")


def test_the_token_must_be_a_secret_reference(repo: Path) -> None:
    with pytest.raises(ConfigError, match="token: holds a credential"):
        Client().register_component("alerter", "team", "slack", {"token": "xoxb-123", "channel": "#ml"})
    with pytest.raises(ConfigError, match="channel: .*without spaces"):
        Client().register_component("alerter", "team", "slack", {"token": "{{s.t}}", "channel": "a b"})


PIPE = """
from conveyor import get_step_context, pipeline, step
from conveyor.alerters import alert_on_failure

@step(enable_cache=False)
def approve(model_card: str) -> bool:
    return get_step_context().alerter.ask(f"Deploy {model_card}?", timeout=30)

@step(on_failure=alert_on_failure, enable_cache=False)
def deploy(approved: bool) -> str:
    if not approved:
        raise RuntimeError("not approved")
    return "deployed"

@pipeline
def release(model_card: str) -> None:
    deploy(approve(model_card))
"""


@pytest.mark.integration
@pytest.mark.parametrize("answer", ["approve", "reject"])
def test_a_pipeline_asks_in_a_step_and_alerts_on_failure(repo: Path, fake_slack: FakeSlack, answer: str) -> None:
    _alerter(repo, fake_slack)
    Client().update_stack("default", {"alerter": "team"})
    (repo / "release_pipe.py").write_text(textwrap.dedent(PIPE))
    sys.modules.pop("release_pipe", None)
    release = importlib.import_module("release_pipe").release
    fake_slack.answer_next(answer)
    if answer == "approve":
        run = release("churn v7")
        assert run.steps["deploy"].outputs["output"].load() == "deployed"
        assert [m.text.split("\n")[0] for m in fake_slack.messages] == ["Deploy churn v7?"]
        return
    with pytest.raises(StepFailedError, match="not approved"):
        release("churn v7")
    run = Client().get_pipeline("release").last_run
    texts = [m.text for m in fake_slack.messages]
    assert texts[1:] == [f"Step 'deploy' failed in run {run.name!r} of pipeline 'release': RuntimeError: not approved"]
    assert [(h.step_id, h.status) for h in run.hooks] == [("deploy", "completed")]


@pytest.mark.integration
def test_the_bots_own_messages_answer_nothing(repo: Path, fake_slack: FakeSlack) -> None:
    alerter = _alerter(repo, fake_slack)
    fake_slack.answer_next("approve", after=0.0, user=BOT_USER)
    assert alerter.ask("Deploy?", timeout=0.4) is False


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(hostile_text(), st.sampled_from(["approve it", "not approve", "approve?reject", "yes no", ""])))
def test_only_an_exact_word_answers(text: str) -> None:
    verdict = reply_verdict(text, ["approve", "yes"], ["reject", "no"])
    word = text.strip(" \t\r\n*_~`.!,;:").casefold()
    assert verdict is (True if word in ("approve", "yes") else False if word in ("reject", "no") else None)


@pytest.mark.integration
def test_hostile_text_cannot_mention_or_link(repo: Path) -> None:
    with FakeSlack() as fake:
        Client().create_secret("slack", {"token": fake.token})
        alerter = flavors.get("alerter", "slack").build(
            "x", {"token": "{{slack.token}}", "channel": "C1", "base_url": fake.base_url}
        )

        @settings(max_examples=40, deadline=None)
        @given(text=hostile_text())
        def check(text: str) -> None:
            before = len(fake.messages)
            alerter.post(text + "<!here><@U1>")
            sent = fake.messages[before].text
            assert "<" not in sent and ">" not in sent
            assert sent.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").endswith("<!here><@U1>")

        check()
