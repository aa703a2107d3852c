"""Settings: names and defaults, empty means unset, one-line refusals that keep secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from credit_tasks.errors import ConfigError
from credit_tasks.settings import Settings, load_settings, redact_url

API_KEY = "sk-or-v1-unit-ordinary-0123456789abcdef"
MANAGEMENT_KEY = "sk-or-v1-unit-management-fedcba9876543210"
PASSWORD = "hunter2-redis-password"
PREFIXES = ("OPENROUTER_", "CREDIT_", "CELERY_", "REDIS_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No project variable from the outer environment, and no `.env` in the working directory."""
    for name in list(os.environ):
        if name.startswith(PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def refusal(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    """The message of the ConfigError that load_settings raises under `env`."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    return str(info.value)


@pytest.mark.parametrize(
    ("attribute", "expected"),
    [
        ("openrouter_api_key", None),
        ("openrouter_management_key", None),
        ("openrouter_base_url", "https://openrouter.ai/api/v1"),
        ("redis_url", "redis://localhost:6379/0"),
        ("credit_warning_threshold", 10.0),
        ("credit_critical_threshold", 5.0),
        ("credit_check_interval_minutes", 30),
        ("credit_alert_cooldown_hours", 1),
        ("credit_initial_balance", None),
        ("credit_recovery_margin", 0.1),
        ("credit_unknown_after_failures", 3),
        ("credit_history_retention_days", 90),
        ("credit_redis_prefix", "openrouter"),
        ("credit_spike_window_minutes", 60.0),
        ("credit_spike_factor", 5.0),
        ("credit_spike_min_usd", 1.0),
        ("credit_runway_min_span_minutes", 60.0),
        ("credit_report_hour_utc", None),
        ("credit_inhibit_when_account_critical", True),
        ("broker_url", "redis://localhost:6379/0"),
        ("result_backend", "redis://localhost:6379/0"),
    ],
)
def test_an_empty_environment_gives_the_documented_defaults(
    attribute: str, expected: object
) -> None:
    assert getattr(load_settings(), attribute) == expected


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        (
            "OPENROUTER_BASE_URL",
            "https://proxy.example/api/v1",
            "openrouter_base_url",
            "https://proxy.example/api/v1",
        ),
        (
            "REDIS_URL",
            "redis://cache.internal:6380/2",
            "redis_url",
            "redis://cache.internal:6380/2",
        ),
        ("CREDIT_WARNING_THRESHOLD", "25", "credit_warning_threshold", 25.0),
        ("CREDIT_CRITICAL_THRESHOLD", "2.5", "credit_critical_threshold", 2.5),
        ("CREDIT_CHECK_INTERVAL_MINUTES", "15", "credit_check_interval_minutes", 15),
        ("CREDIT_ALERT_COOLDOWN_HOURS", "6", "credit_alert_cooldown_hours", 6),
        ("CREDIT_INITIAL_BALANCE", "50", "credit_initial_balance", 50.0),
        ("CREDIT_RECOVERY_MARGIN", "0.2", "credit_recovery_margin", 0.2),
        ("CREDIT_UNKNOWN_AFTER_FAILURES", "5", "credit_unknown_after_failures", 5),
        ("CREDIT_HISTORY_RETENTION_DAYS", "30", "credit_history_retention_days", 30),
        ("CREDIT_REDIS_PREFIX", "staging.or", "credit_redis_prefix", "staging.or"),
        ("CREDIT_SPIKE_FACTOR", "0", "credit_spike_factor", 0.0),
        ("CREDIT_SPIKE_WINDOW_MINUTES", "15", "credit_spike_window_minutes", 15.0),
        ("CREDIT_REPORT_HOUR_UTC", "7", "credit_report_hour_utc", 7),
        (
            "CREDIT_INHIBIT_WHEN_ACCOUNT_CRITICAL",
            "false",
            "credit_inhibit_when_account_critical",
            False,
        ),
        ("CELERY_BROKER_URL", "redis://broker:6379/1", "broker_url", "redis://broker:6379/1"),
        (
            "CELERY_RESULT_BACKEND",
            "redis://results:6379/3",
            "result_backend",
            "redis://results:6379/3",
        ),
    ],
)
def test_each_setting_is_read_from_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, attribute: str, expected: object
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), attribute) == expected


def test_celery_urls_follow_redis_url_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6380/4")
    settings = load_settings()
    assert settings.broker_url == "redis://cache.internal:6380/4"
    assert settings.result_backend == "redis://cache.internal:6380/4"


def test_keys_are_read_as_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", API_KEY)
    monkeypatch.setenv("OPENROUTER_MANAGEMENT_KEY", MANAGEMENT_KEY)
    settings = load_settings()
    assert settings.require_api_key().get_secret_value() == API_KEY
    assert settings.openrouter_management_key is not None
    assert settings.openrouter_management_key.get_secret_value() == MANAGEMENT_KEY


@pytest.mark.parametrize(
    ("variable", "attribute", "default"),
    [
        ("OPENROUTER_API_KEY", "openrouter_api_key", None),
        ("OPENROUTER_MANAGEMENT_KEY", "openrouter_management_key", None),
        ("OPENROUTER_BASE_URL", "openrouter_base_url", "https://openrouter.ai/api/v1"),
        ("REDIS_URL", "redis_url", "redis://localhost:6379/0"),
        ("CELERY_BROKER_URL", "broker_url", "redis://localhost:6379/0"),
        ("CREDIT_WARNING_THRESHOLD", "credit_warning_threshold", 10.0),
        ("CREDIT_CRITICAL_THRESHOLD", "credit_critical_threshold", 5.0),
        ("CREDIT_INITIAL_BALANCE", "credit_initial_balance", None),
        ("CREDIT_UNKNOWN_AFTER_FAILURES", "credit_unknown_after_failures", 3),
        ("CREDIT_REDIS_PREFIX", "credit_redis_prefix", "openrouter"),
    ],
)
def test_a_variable_set_to_empty_counts_as_unset(
    monkeypatch: pytest.MonkeyPatch, variable: str, attribute: str, default: object
) -> None:
    monkeypatch.setenv(variable, "")
    assert getattr(load_settings(), attribute) == default


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CREDIT_WARNING_THRESHOLD", "-1"),
        ("CREDIT_WARNING_THRESHOLD", "ten"),
        ("CREDIT_WARNING_THRESHOLD", "nan"),
        ("CREDIT_WARNING_THRESHOLD", "inf"),
        ("CREDIT_CRITICAL_THRESHOLD", "-0.5"),
        ("CREDIT_CRITICAL_THRESHOLD", "nan"),
        ("CREDIT_CHECK_INTERVAL_MINUTES", "0"),
        ("CREDIT_CHECK_INTERVAL_MINUTES", "-30"),
        ("CREDIT_CHECK_INTERVAL_MINUTES", "inf"),
        ("CREDIT_ALERT_COOLDOWN_HOURS", "-1"),
        ("CREDIT_ALERT_COOLDOWN_HOURS", "soon"),
        ("CREDIT_INITIAL_BALANCE", "-5"),
        ("CREDIT_INITIAL_BALANCE", "nan"),
        ("CREDIT_INITIAL_BALANCE", "inf"),
        ("CREDIT_RECOVERY_MARGIN", "-0.1"),
        ("CREDIT_RECOVERY_MARGIN", "1.5"),
        ("CREDIT_RECOVERY_MARGIN", "nan"),
        ("CREDIT_UNKNOWN_AFTER_FAILURES", "0"),
        ("CREDIT_UNKNOWN_AFTER_FAILURES", "2.5"),
        ("CREDIT_UNKNOWN_AFTER_FAILURES", "three"),
        ("CREDIT_HISTORY_RETENTION_DAYS", "0"),
        ("CREDIT_HISTORY_RETENTION_DAYS", "-90"),
        ("CREDIT_REDIS_PREFIX", "has space"),
        ("CREDIT_REDIS_PREFIX", "a:b"),
        ("CREDIT_INHIBIT_WHEN_ACCOUNT_CRITICAL", "maybe"),
        ("OPENROUTER_BASE_URL", "not a url"),
        ("OPENROUTER_BASE_URL", "openrouter.ai/api/v1"),
        ("OPENROUTER_BASE_URL", "ftp://openrouter.ai/api/v1"),
        ("REDIS_URL", "localhost:6379"),
        ("REDIS_URL", "http://localhost:6379/0"),
        ("REDIS_URL", "redis://"),
        ("REDIS_URL", "redis://localhost:port/0"),
        ("REDIS_URL", "redis://localhost:70000/0"),
        ("CELERY_BROKER_URL", "not a url"),
        ("CELERY_RESULT_BACKEND", "redis://localhost:abc/0"),
        # beyond what Redis and the clock can hold
        ("CREDIT_HISTORY_RETENTION_DAYS", "36500"),
        ("CREDIT_ALERT_COOLDOWN_HOURS", "1e308"),
        ("CREDIT_ALERT_COOLDOWN_HOURS", "1e13"),
        ("CREDIT_CHECK_INTERVAL_MINUTES", "0.001"),
        ("CREDIT_CHECK_INTERVAL_MINUTES", "1e9"),
        ("CREDIT_WARNING_THRESHOLD", "1e12"),
        ("CREDIT_INITIAL_BALANCE", "1e300"),
        ("CREDIT_UNKNOWN_AFTER_FAILURES", "1000000000000"),
        ("CREDIT_BURN_WINDOW_HOURS", "1e308"),
        ("CREDIT_RUNWAY_WARNING_HOURS", "1e308"),
        ("CREDIT_HTTP_TIMEOUT_S", "1e308"),
        ("CREDIT_RETRY_ATTEMPTS", "1000000"),
        ("CREDIT_RETRY_BUDGET_S", "1e308"),
        ("CREDIT_ALERT_RETRY_ATTEMPTS", "1000"),
        ("CREDIT_ALERT_RETRY_S", "1e308"),
        ("CREDIT_VISIBILITY_TIMEOUT_S", "1e308"),
        ("CREDIT_VISIBILITY_TIMEOUT_S", "0.5"),
        ("OPENROUTER_BASE_URL", "http://alice:pw@openrouter.example/api/v1"),
        ("OPENROUTER_BASE_URL", "https://alice@openrouter.example/api/v1"),
    ],
)
def test_an_invalid_value_is_refused_in_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    message = refusal(monkeypatch, **{variable: value})
    assert variable in message
    assert "\n" not in message
    assert "set it to" in message


@pytest.mark.parametrize(
    ("warning", "critical"), [("10", "10"), ("10", "12"), ("0", "0"), ("3", "5")]
)
def test_critical_must_be_below_warning(
    monkeypatch: pytest.MonkeyPatch, warning: str, critical: str
) -> None:
    message = refusal(
        monkeypatch, CREDIT_WARNING_THRESHOLD=warning, CREDIT_CRITICAL_THRESHOLD=critical
    )
    assert message.startswith("CREDIT_CRITICAL_THRESHOLD")
    assert "CREDIT_WARNING_THRESHOLD" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"credit_warning_threshold": -1}, "CREDIT_WARNING_THRESHOLD"),
        ({"credit_critical_threshold": 11}, "CREDIT_CRITICAL_THRESHOLD"),
        ({"redis_url": "mysql://db/0"}, "REDIS_URL"),
    ],
)
def test_load_settings_refuses_invalid_overrides_too(
    overrides: dict[str, object], variable: str
) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings(**overrides)


@pytest.mark.parametrize(
    ("variable", "value", "secret"),
    [
        ("REDIS_URL", f"http://:{PASSWORD}@cache:6379/0", PASSWORD),
        ("REDIS_URL", f"redis://user:{PASSWORD}@cache:notaport/0", PASSWORD),
        ("REDIS_URL", f"redis://:{PASSWORD}@cache:99999/0", PASSWORD),
        ("CELERY_BROKER_URL", f"amqp://guest:{PASSWORD}@rabbit//", PASSWORD),
        ("CELERY_RESULT_BACKEND", f"db+postgresql://u:{PASSWORD}@pg/celery", PASSWORD),
        ("OPENROUTER_BASE_URL", f"ftp://proxyuser:{PASSWORD}@proxy.example/api", PASSWORD),
    ],
)
def test_a_refusal_never_shows_a_password(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, secret: str
) -> None:
    message = refusal(monkeypatch, **{variable: value})
    assert variable in message
    assert secret not in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CREDIT_WARNING_THRESHOLD", "-1"),
        ("CREDIT_CRITICAL_THRESHOLD", "20"),
        ("REDIS_URL", "http://localhost"),
    ],
)
def test_a_refusal_never_shows_the_api_keys(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    message = refusal(
        monkeypatch,
        OPENROUTER_API_KEY=API_KEY,
        OPENROUTER_MANAGEMENT_KEY=MANAGEMENT_KEY,
        **{variable: value},
    )
    assert API_KEY not in message
    assert MANAGEMENT_KEY not in message


@pytest.mark.parametrize("show", [repr, str])
def test_printing_the_settings_never_shows_the_keys(show: object) -> None:
    settings = Settings(
        _env_file=None,
        openrouter_api_key=API_KEY,  # type: ignore[call-arg]
        openrouter_management_key=MANAGEMENT_KEY,
    )
    text = show(settings)  # type: ignore[operator]
    assert "openrouter_api_key" in text
    assert API_KEY not in text
    assert MANAGEMENT_KEY not in text


def test_require_api_key_says_to_set_openrouter_api_key() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings().require_api_key()
    message = str(info.value)
    assert "OPENROUTER_API_KEY" in message
    assert "set" in message
    assert "\n" not in message


def test_an_empty_variable_counts_as_unset_even_when_dotenv_has_a_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "CREDIT_WARNING_THRESHOLD=20\n"
        "OPENROUTER_API_KEY=sk-or-v1-from-dotenv\n"
        "CREDIT_CRITICAL_THRESHOLD=7\n"
    )
    monkeypatch.setenv("CREDIT_WARNING_THRESHOLD", "")
    monkeypatch.setenv("OPENROUTER_API_KEY", "")
    settings = load_settings()
    assert settings.credit_warning_threshold == 10.0  # the default, not .env's 20
    assert settings.openrouter_api_key is None
    assert settings.credit_critical_threshold == 7.0  # a variable left alone still reads .env


def test_an_empty_api_key_is_as_good_as_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "")
    with pytest.raises(ConfigError, match="OPENROUTER_API_KEY"):
        load_settings().require_api_key()


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("redis://:pw@host:6379/0", ["redis://", "host:6379", "/0"]),
        (f"redis://:{PASSWORD}@cache.internal:6380/2", ["redis://", "cache.internal:6380", "/2"]),
        (f"rediss://default:{PASSWORD}@cache/1", ["rediss://", "default", "cache", "/1"]),
    ],
)
def test_redact_url_hides_the_password_and_keeps_the_rest(url: str, kept: list[str]) -> None:
    password = url.split("@")[0].rsplit(":", 1)[1]
    redacted = redact_url(url)
    assert password not in redacted
    for part in kept:
        assert part in redacted


@pytest.mark.parametrize(
    "url", ["redis://localhost:6379/0", "redis://cache/1", "unix:///run/redis.sock"]
)
def test_redact_url_leaves_a_url_without_password_alone(url: str) -> None:
    assert redact_url(url) == url


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CREDIT_CHECK_INTERVAL_MINUTES", "0.0167"),  # a second, about
        ("CREDIT_CHECK_INTERVAL_MINUTES", "10080"),
        ("CREDIT_ALERT_COOLDOWN_HOURS", "8760"),
        ("CREDIT_HISTORY_RETENTION_DAYS", "3650"),
        ("CREDIT_HISTORY_RETENTION_DAYS", "0.25"),
        ("CREDIT_WARNING_THRESHOLD", "1e9"),
        ("CREDIT_BURN_WINDOW_HOURS", "8760"),
        ("CREDIT_RETRY_ATTEMPTS", "20"),
        ("CREDIT_SPIKE_WINDOW_MINUTES", "10080"),
        ("CREDIT_SPIKE_FACTOR", "1000"),
        ("CREDIT_RUNWAY_MIN_SPAN_MINUTES", "525600"),
        ("CREDIT_REPORT_HOUR_UTC", "23"),
    ],
)
def test_the_bounds_themselves_are_accepted(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), variable.lower()) == float(value)


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:s3cr3t-pw@openrouter.example/api/v1",
        "https://alice.s3cr3t-pw@openrouter.example:8443/api/v1",
        "https://:s3cr3t-pw@openrouter.example/api/v1",
    ],
)
def test_a_base_url_with_credentials_is_refused_without_showing_them(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    message = refusal(monkeypatch, OPENROUTER_BASE_URL=url)
    assert message.startswith("OPENROUTER_BASE_URL='http")
    assert "***@openrouter.example" in message
    assert "without a user name or password" in message and "OPENROUTER_API_KEY" in message
    assert "s3cr3t-pw" not in message and "alice" not in message
