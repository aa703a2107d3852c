"""Alert delivery through Apprise, to real JSON receivers on 127.0.0.1 (nothing leaves the host)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from credit_tasks.alerts import Alert
from credit_tasks.channels import NOTIFY_TYPES, load_channels, send, title_for
from credit_tasks.errors import ConfigError
from credit_tasks.rules import AlertType

from .receiver import Receiver, serve

# Apprise's e-mail plugin imports the stdlib imghdr, deprecated since Python 3.11
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")


receiver = pytest.fixture(serve, name="receiver")
other_receiver = pytest.fixture(serve, name="other_receiver")


def alert(kind: str = "warning", **extra: object) -> Alert:
    return Alert.from_dict(
        {
            "id": "a1",
            "type": kind,
            "subject": "account",
            "status": "warning",
            "message": f"OpenRouter credits: a {kind} message",
            "remaining_usd": 8.0,
            "timestamp": "2026-12-01T12:00:00+00:00",
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("kind", "title", "apprise_type"),
    [
        ("warning", "OpenRouter credits: WARNING", "warning"),
        ("critical", "OpenRouter credits: CRITICAL", "failure"),
        ("unknown", "OpenRouter credits: UNKNOWN", "failure"),
        ("resolved", "OpenRouter credits: resolved", "success"),
        ("runway", "OpenRouter credits: RUNWAY", "warning"),
        ("spike", "OpenRouter credits: SPIKE", "warning"),
        ("report", "OpenRouter credits: REPORT", "info"),
    ],
)
def test_two_channels_both_receive_the_alert_with_its_title_body_and_type(
    receiver: Receiver, kind: str, title: str, apprise_type: str
) -> None:
    channels = load_channels(f"{receiver.url('/one')} , {receiver.url('/two')}")

    assert send(channels, alert(kind)) == []
    assert sorted(receiver.posts, key=lambda post: post[0]) == [
        (
            path,
            {
                "version": "1.0",
                "title": title,
                "message": f"OpenRouter credits: a {kind} message",
                "attachments": [],
                "type": apprise_type,
            },
        )
        for path in ("/one", "/two")
    ]


def test_every_alert_type_has_an_apprise_type() -> None:
    assert set(NOTIFY_TYPES) == {kind.value for kind in AlertType}


def test_an_alert_without_a_type_still_gets_a_title() -> None:
    assert title_for(None) == "OpenRouter credits: ALERT"


def test_a_failing_channel_is_reported_while_the_other_still_receives(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    first, second = load_channels(f"{receiver.url('/first')},{receiver.url('/second')}")
    receiver.fail_next(1)  # the first request, to /first

    assert send([first, second], alert()) == [first.id]
    assert receiver.paths() == ["/second"]
    assert f"alert a1 not delivered to {first.label}" in caplog.text
    assert f"alert a1 delivered to {second.label}" in caplog.text


def test_skip_does_not_send_again_to_channels_already_delivered(
    receiver: Receiver, other_receiver: Receiver
) -> None:
    delivered, failing = load_channels(f"{receiver.url('/a')},{other_receiver.url('/b')}")
    other_receiver.fail_next(1)
    assert send([delivered, failing], alert()) == [failing.id]

    assert send([delivered, failing], alert(), skip={delivered.id}) == []
    assert receiver.paths() == ["/a"]
    assert other_receiver.paths() == ["/b"]


@pytest.mark.parametrize(
    ("name", "template"),
    [
        ("alerts.txt", "# two receivers\n{a}\n{b}\n"),
        ("alerts.yml", "urls:\n  - {a}\n  - {b}\n"),
    ],
)
def test_a_config_file_names_the_channels(
    receiver: Receiver, tmp_path: Path, name: str, template: str
) -> None:
    config = tmp_path / name
    config.write_text(template.format(a=receiver.url("/a"), b=receiver.url("/b")))

    channels = load_channels(str(config))

    assert [channel.label for channel in channels] == [
        f"json://127.0.0.1:{receiver.port}/a",
        f"json://127.0.0.1:{receiver.port}/b",
    ]
    assert send(channels, alert()) == []
    assert receiver.paths() == ["/a", "/b"]


def test_a_config_file_without_a_url_is_refused_by_name(tmp_path: Path) -> None:
    config = tmp_path / "empty.txt"
    config.write_text("# nothing yet\n")

    with pytest.raises(ConfigError, match=f"CREDIT_ALERT_URLS file {config} yields no Apprise URL"):
        load_channels(str(config))


def test_a_bad_line_in_a_config_file_is_warned_about_without_its_secret(
    receiver: Receiver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    config = tmp_path / "alerts.txt"
    config.write_text(f"{receiver.url('/a')}\nnosuchscheme://secret-token@host\n")

    channels = load_channels(str(config))

    assert len(channels) == 1
    assert f"CREDIT_ALERT_URLS file {config}: Apprise reported problems" in caplog.text
    assert "secret-token" not in caplog.text


@pytest.mark.parametrize(
    ("spec", "shown", "secrets"),
    [
        (
            "slack://TOKENA/TOKENB/TOKENC, nosuchscheme://secret-token@host",
            "entry 2 is not a URL Apprise knows (scheme 'nosuchscheme')",
            ["TOKENA", "TOKENB", "TOKENC", "secret-token"],
        ),
        (
            "slack://TOKENA/TOKENB/TOKENC,garbage secret-token",
            "entry 2 is not a URL Apprise knows (no scheme",
            ["TOKENA", "secret-token"],
        ),
        (
            "slack://onlyonetoken",
            "entry 1 is not a URL Apprise knows (a 'slack' URL, but its parts do not parse)",
            ["onlyonetoken"],
        ),
        (
            "https://example.com/hooks/secrettoken",
            "entry 1 is not a URL Apprise knows (scheme 'https')",
            ["secrettoken"],
        ),
    ],
)
def test_a_url_apprise_does_not_know_is_refused_in_one_line_without_its_token(
    caplog: pytest.LogCaptureFixture, spec: str, shown: str, secrets: list[str]
) -> None:
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ConfigError) as refused:
        load_channels(spec)

    message = str(refused.value)
    assert message.startswith(f"CREDIT_ALERT_URLS {shown}")
    assert message.endswith("see https://github.com/caronc/apprise/wiki")
    assert "\n" not in message
    for secret in secrets:
        assert secret not in message
        assert secret not in caplog.text


def test_no_spec_means_no_channels() -> None:
    assert load_channels(None) == []
    assert load_channels(" , ") == []


def test_a_channel_never_shows_its_password(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    (channel,) = load_channels(f"json://user:secretpass@127.0.0.1:{receiver.port}/")
    receiver.fail_next(1)

    assert send([channel], alert()) == [channel.id]
    assert channel.label == f"json://user:****@127.0.0.1:{receiver.port}/"
    assert "secretpass" not in repr(channel)
    assert "secretpass" not in caplog.text


def test_ids_are_stable_for_one_url_and_differ_between_urls(receiver: Receiver) -> None:
    (first,) = load_channels(receiver.url("/a"))
    (again,) = load_channels(receiver.url("/a"))
    (other,) = load_channels(receiver.url("/b"))

    assert first.id == again.id != other.id
    assert len(first.id) == 12
    assert int(first.id, 16) >= 0
    assert load_channels(f"{receiver.url('/a')},{receiver.url('/a')}") == [first]


def test_an_unreachable_channel_fails_fast_and_is_reported(receiver: Receiver) -> None:
    down, up = load_channels(f"json://127.0.0.1:1/,{receiver.url('/up')}")

    started = time.monotonic()
    failed = send([down, up], alert())

    assert time.monotonic() - started < 2
    assert failed == [down.id]
    assert receiver.paths() == ["/up"]
