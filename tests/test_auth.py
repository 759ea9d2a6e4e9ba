"""Candor API keys, the admin key, and the refusal to start without a proper admin key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from proxy.auth import (
    ADMIN_KEY_ENV,
    DEMO_ADMIN_KEY,
    Authenticator,
    check_startup,
    hash_key,
    new_key,
    startup_problems,
)
from proxy.cli import main
from proxy.errors import ConfigError, Unauthorized
from proxy.settings import ApiKeyEntry, AuthSettings, RateLimits, Settings

STRONG_ADMIN = "ck-admin-0123456789abcdef0123"


def settings_with(*keys: tuple[str, str], pepper: str | None = None, **auth: object) -> Settings:
    entries = [
        ApiKeyEntry(id=key_id, hash=hash_key(key, pepper), tenant=f"tenant-{key_id}")
        for key_id, key in keys
    ]
    return Settings(auth=AuthSettings(keys=entries, **auth))  # type: ignore[arg-type]


def test_a_configured_key_names_its_tenant_and_limits() -> None:
    key_a, key_b = new_key(), new_key()
    limits = RateLimits(requests_per_minute=5)
    settings = settings_with(("a", key_a), ("b", key_b), default_rate_limits=limits)
    auth = Authenticator(settings, environ={})
    who = auth.principal(f"Bearer {key_b}")
    assert (who.key_id, who.tenant, who.policy, who.limits) == ("b", "tenant-b", None, limits)
    assert auth.principal(f"bearer  {key_a}").key_id == "a"


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Basic abc", "Bearer ck-wrong", "ck-unprefixed"]
)
def test_missing_or_wrong_keys_are_refused(header: str | None) -> None:
    auth = Authenticator(settings_with(("a", new_key())), environ={})
    with pytest.raises(Unauthorized) as refused:
        auth.principal(header)
    assert refused.value.status == 401 and refused.value.code == "invalid_api_key"


def test_the_pepper_is_part_of_the_hash() -> None:
    key = new_key()
    settings = settings_with(("a", key), pepper="pepper-1")
    assert Authenticator(settings, environ={"CANDOR_KEY_PEPPER": "pepper-1"}).principal(
        f"Bearer {key}"
    )
    with pytest.raises(Unauthorized):
        Authenticator(settings, environ={}).principal(f"Bearer {key}")


def test_pass_through_mode_serves_anyone_as_one_caller() -> None:
    auth = Authenticator(Settings(auth=AuthSettings(mode="none")), environ={})
    assert auth.principal(None).key_id == auth.principal("Bearer whatever").key_id == "anonymous"


def test_admin_key_from_environment_or_hash() -> None:
    hashed = Settings(auth=AuthSettings(admin_key_hash=hash_key(STRONG_ADMIN, None)))
    Authenticator(hashed, environ={}).check_admin(f"Bearer {STRONG_ADMIN}")
    Authenticator(Settings(), environ={ADMIN_KEY_ENV: STRONG_ADMIN}).check_admin(
        f"Bearer {STRONG_ADMIN}"
    )
    for header in (None, "Bearer nope", f"Bearer {DEMO_ADMIN_KEY}"):
        with pytest.raises(Unauthorized):
            Authenticator(hashed, environ={}).check_admin(header)


@pytest.mark.parametrize("around", ["\n", " ", "\r\n", "\t \n"])
def test_an_admin_key_read_from_a_file_is_accepted_without_its_newline(around: str) -> None:
    # A Secret made with `echo key > file` ends in a newline; the key a client sends cannot,
    # so before, the admin endpoints refused every caller.
    auth = Authenticator(Settings(), environ={ADMIN_KEY_ENV: STRONG_ADMIN + around})
    auth.check_admin(f"Bearer {STRONG_ADMIN}")
    settings = settings_with(("a", new_key()))
    assert startup_problems(settings, environ={ADMIN_KEY_ENV: STRONG_ADMIN + around}) == []
    # ... and a default key is still a default key with a newline after it.
    with pytest.raises(ConfigError, match="refusing to start"):
        check_startup(settings, environ={ADMIN_KEY_ENV: DEMO_ADMIN_KEY + around})


def test_a_client_key_is_not_an_admin_key() -> None:
    key = new_key()
    auth = Authenticator(settings_with(("a", key)), environ={ADMIN_KEY_ENV: STRONG_ADMIN})
    with pytest.raises(Unauthorized):
        auth.check_admin(f"Bearer {key}")


def test_demo_mode_has_a_demo_admin_key() -> None:
    auth = Authenticator(Settings(demo_mode=True), environ={})
    auth.check_admin(f"Bearer {DEMO_ADMIN_KEY}")
    assert startup_problems(Settings(demo_mode=True), environ={}) == []


@pytest.mark.parametrize("admin", ["changeme", "admin", "", "short-key", DEMO_ADMIN_KEY])
def test_refuses_to_start_with_a_default_admin_key(admin: str) -> None:
    settings = settings_with(("a", new_key()))
    with pytest.raises(ConfigError, match="refusing to start"):
        check_startup(settings, environ={ADMIN_KEY_ENV: admin})


def test_refuses_to_start_without_admin_key_or_client_keys() -> None:
    problems = startup_problems(Settings(), environ={})
    assert any("no admin key" in p for p in problems)
    assert any("auth.keys is empty" in p for p in problems)
    weak_hash = Settings(auth=AuthSettings(mode="none", admin_key_hash=hash_key("changeme", None)))
    assert startup_problems(weak_hash, environ={}) == [
        "auth.admin_key_hash is the hash of a default admin key"
    ]
    fine = settings_with(("a", new_key()))
    assert startup_problems(fine, environ={ADMIN_KEY_ENV: STRONG_ADMIN}) == []


def test_candor_serve_refuses_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(ADMIN_KEY_ENV, raising=False)
    monkeypatch.setenv("CANDOR_CONFIG", "unset")  # `serve` sets it; restored after the test
    config = tmp_path / "candor.yaml"
    config.write_text("models:\n  q:\n    base_url: http://127.0.0.1:9/v1\n")
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "refusing to start" in err and ADMIN_KEY_ENV in err


def test_keys_new_prints_a_key_and_a_config_entry_that_accepts_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANDOR_KEY_PEPPER", "deployment-pepper")
    args = ["--tenant", "acme", "--policy", "strict", "--rpm", "60", "--models", "qwen, gpt"]
    assert main(["keys", "new", *args]) == 0
    out = capsys.readouterr().out
    key = out.splitlines()[0].removeprefix("key: ")
    assert key.startswith("ck-") and len(key) > 40
    (entry,) = yaml.safe_load(out.split("\n", 2)[2])
    assert key not in out.split("\n", 1)[1]  # the key itself is printed once, not in the config
    settings = Settings(auth=AuthSettings(keys=[ApiKeyEntry(**entry)]))
    who = Authenticator(settings).principal(f"Bearer {key}")
    assert (who.tenant, who.policy, who.limits.requests_per_minute) == ("acme", "strict", 60)
    assert who.models == {"qwen", "gpt"}
    assert "# hashed with the pepper in CANDOR_KEY_PEPPER" in out


def test_keys_say_whether_they_hold_a_pepper_and_a_filed_pepper_loses_its_newline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key made without the server's pepper was refused with no hint; a pepper read from a
    file (ending in a newline) on one side only made every key differ."""
    monkeypatch.setenv("CANDOR_KEY_PEPPER", "filed-pepper\n")
    assert main(["keys", "new"]) == 0
    out = capsys.readouterr().out
    key = out.splitlines()[0].removeprefix("key: ")
    (entry,) = yaml.safe_load(out.split("\n", 2)[2])
    settings = Settings(auth=AuthSettings(keys=[ApiKeyEntry(**entry)]))
    Authenticator(settings, environ={"CANDOR_KEY_PEPPER": "filed-pepper"}).principal(
        f"Bearer {key}"
    )
    monkeypatch.delenv("CANDOR_KEY_PEPPER")
    assert main(["keys", "admin"]) == 0
    assert "# hashed without a pepper (CANDOR_KEY_PEPPER is not set)" in capsys.readouterr().out


def test_keys_admin_prints_a_hash_the_admin_check_accepts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CANDOR_KEY_PEPPER", raising=False)
    assert main(["keys", "admin"]) == 0
    out = capsys.readouterr().out
    key = out.splitlines()[0].removeprefix("admin key: ")
    digest = yaml.safe_load(out.split("\n", 2)[2])["auth"]["admin_key_hash"]
    settings = Settings(auth=AuthSettings(admin_key_hash=digest))
    Authenticator(settings, environ={}).check_admin(f"Bearer {key}")


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--tpm", "-5"], "--tpm: Input should be greater than or equal to 1"),
        (["--rpm", "0"], "--rpm: Input should be greater than or equal to 1"),  # was dropped
        (["--id", "bad id!"], "--id: String should match pattern"),
        (["--models", " , "], "--models: List should have at least 1 item"),
        # Before, an empty tenant was accepted and an empty policy dropped, without a word.
        (["--tenant", ""], "--tenant: must not be empty or only spaces"),
        (["--tenant", "  "], "--tenant: must not be empty or only spaces"),
        (["--policy", ""], "--policy: must not be empty or only spaces"),
        (["--id", " "], "--id: String should match pattern"),
    ],
)
def test_keys_new_refuses_what_the_config_would(
    capsys: pytest.CaptureFixture[str], args: list[str], problem: str
) -> None:
    assert main(["keys", "new", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"candor: {problem}")
    assert "ck-" not in captured.out
