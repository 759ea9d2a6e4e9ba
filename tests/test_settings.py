"""Typed settings: YAML file, environment overrides, errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from proxy.errors import ConfigError
from proxy.settings import Settings, Timeouts, load_settings
from proxy.yamlfile import YamlDocument


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "candor.yaml"
    path.write_text(text)
    return path


def test_models_and_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "models:\n  qwen:\n    base_url: http://127.0.0.1:9000/v1/\n    upstream_model: qwen-max\n",
    )
    settings = load_settings(path)
    route = settings.models["qwen"]
    assert route.provider == "openai" and route.base_url == "http://127.0.0.1:9000/v1"
    assert route.upstream_model == "qwen-max"
    assert settings.timeouts_for("qwen").connect == 5.0


def test_error_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 80\nmodels:\n  qwen:\n    base_url: ftp://nope\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert f"{path}:5: models.qwen.base_url" in caught.value.message


@pytest.mark.parametrize(
    ("field", "value"), [("tenant", '""'), ("tenant", "' '"), ("policy", '""')]
)
def test_a_key_with_a_blank_tenant_or_policy_is_refused(
    tmp_path: Path, field: str, value: str
) -> None:
    # Before, an empty tenant was accepted (its events were recorded as tenant `default`'s).
    digest = "sha256:" + "0" * 64
    path = write(tmp_path, f"auth:\n  keys:\n    - id: k1\n      hash: '{digest}'\n")
    path.write_text(path.read_text() + f"      {field}: {value}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    said = f"{path}:5: auth.keys.0.{field}: Value error, must not be empty or only spaces"
    assert said in caught.value.message


def test_unknown_field_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  qwen:\n    base_url: http://x\n    api_key: sk-1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert f"{path}:4: models.qwen.api_key" in caught.value.message


def test_openai_provider_needs_a_base_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="base_url is required"):
        load_settings(write(tmp_path, "models:\n  qwen:\n    policy: default\n"))


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"candor.yaml:2: invalid YAML"):
        load_settings(write(tmp_path, "models:\n  - : [\n"))


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDOR_SERVER__PORT", "7001")
    settings = load_settings(write(tmp_path, "server:\n  port: 9000\n  host: 0.0.0.0\n"))
    assert settings.server.port == 7001
    assert settings.server.host == "0.0.0.0"


def test_api_key_comes_from_the_named_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  q:\n    base_url: http://x\n    api_key_env: Q_KEY\n")
    settings = load_settings(path)
    key = settings.api_key_for("q", {"Q_KEY": "sk-secret"})
    assert isinstance(key, SecretStr) and "sk-secret" not in repr(key)
    with pytest.raises(ConfigError, match="Q_KEY is not set"):
        settings.api_key_for("q", {})


def test_an_api_key_read_from_a_file_loses_its_newline(tmp_path: Path) -> None:
    # Before, `echo key > file` gave a key ending in a newline: every request to the model
    # was a 500 with a traceback (aiohttp refuses a header holding one).
    path = write(tmp_path, "models:\n  q:\n    base_url: http://x\n    api_key_env: Q_KEY\n")
    settings = load_settings(path)
    key = settings.api_key_for("q", {"Q_KEY": " sk-secret\r\n"})
    assert key is not None and key.get_secret_value() == "sk-secret"
    with pytest.raises(ConfigError, match="Q_KEY holds control characters") as refused:
        settings.api_key_for("q", {"Q_KEY": "sk-sec\nret"})
    assert "sk-sec" not in str(refused.value)


def test_relative_policies_dir_is_relative_to_the_config(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "policies_dir: mypolicies\n"))
    assert settings.policies_dir == tmp_path / "mypolicies"


def test_a_models_timeouts_inherit_the_fields_it_does_not_set(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "timeouts: {connect: 1, first_byte: 2, idle: 3, total: 4}\n"
        "models:\n  q:\n    base_url: http://x\n    timeouts: {connect: 9}\n"
        "  r:\n    base_url: http://x\n",
    )
    settings = load_settings(path)
    # Fields the model leaves out used to be the built-in defaults (60 s to first byte...).
    assert settings.timeouts_for("q") == Timeouts(connect=9, first_byte=2, idle=3, total=4)
    assert settings.timeouts_for("r") == Timeouts(connect=1, first_byte=2, idle=3, total=4)


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "candor.yaml"
    path.write_bytes(b"server:\n  host: caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.message == f"{path}:2: not UTF-8 text (byte 0xe9 at offset 19)"


@pytest.mark.parametrize(
    ("name", "value"), [("CANDOR_MODELS", "notjson"), ("CANDOR_STORE__TIMEOUTS", "{")]
)
def test_malformed_json_in_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    monkeypatch.setenv("CANDOR_STORE__KEY_PREFIX", "fine")  # a leaf: not JSON, and fine
    for path in (None, write(tmp_path, "server:\n  port: 9000\n")):
        with pytest.raises(ConfigError) as caught:
            load_settings(path)
        assert caught.value.message.startswith(f"environment variable {name}: not valid JSON: ")


def test_a_redis_url_needs_its_scheme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # redis-py refused it only when the store started: a traceback, after the config was read.
    path = write(tmp_path, "auth: {mode: none}\nstore:\n  redis_url: 127.0.0.1:6379\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert f"{path}:3: store.redis_url" in caught.value.message
    assert "must start with redis://, rediss:// or unix://" in caught.value.message
    monkeypatch.setenv("REDIS_URL", "user:secret@127.0.0.1:6379")
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, "auth: {mode: none}\n"))
    assert caught.value.message.startswith("environment variable REDIS_URL: must start with")
    assert "secret" not in caught.value.message
    for url in ("redis://:pw@h:6379/0", "rediss://h", "unix:///run/redis.sock"):
        monkeypatch.setenv("REDIS_URL", url)
        assert load_settings(write(tmp_path, "auth: {mode: none}\n")).store.redis_url == url


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://user:S3cretPw@127.0.0.1:9/v1", "must not hold a user or password"),
        ("http://token@127.0.0.1:9/v1", "must not hold a user or password"),
        ("http://127.0.0.1:9/v1?token=QueryTok", "must not hold a query string"),
        ("http://127.0.0.1:9/v1#frag", "must not hold a query string"),
    ],
)
def test_a_base_url_with_credentials_or_a_query_is_refused(
    tmp_path: Path, url: str, problem: str
) -> None:
    # Credentials next to api_key_env were a 500 on every request; a query string a 404.
    path = write(tmp_path, f"models:\n  q:\n    api_key_env: Q_KEY\n    base_url: '{url}'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert f"{path}:4: models.q.base_url" in caught.value.message
    assert problem in caught.value.message
    assert "S3cretPw" not in caught.value.message


def test_a_duplicate_key_is_refused_with_its_line(tmp_path: Path) -> None:
    # YAML loaders keep the last one silently.
    path = write(
        tmp_path,
        "models:\n  m1: {base_url: 'http://a'}\n  m1: {base_url: 'http://b'}\n"
        "store:\n  redaction: none\nstore:\n  window_seconds: 600\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.message == f"{path}:3: duplicate key `m1`"
    path = write(tmp_path, "server: {port: 1, host: h, port: 2}\n")
    with pytest.raises(ConfigError, match=r"candor.yaml:1: duplicate key `port`"):
        load_settings(path)


@pytest.mark.parametrize(
    ("text", "duplicate"),
    [
        ("a:\n  1: x\n  '1': y\n", None),  # an int and a string: two keys
        ("a:\n  null: x\n  'null': y\n", None),
        ("a:\n  1: x\n  01: y\n", "01"),  # both load as 1
        ("b: &b {x: 1}\na:\n  <<: *b\n  y: 2\nc:\n  <<: [*b]\n  x: 3\n", None),  # merges
    ],
)
def test_keys_are_duplicates_as_loading_makes_them(
    tmp_path: Path, text: str, duplicate: str | None
) -> None:
    path = tmp_path / "any.yaml"
    path.write_text(text)
    if duplicate is None:
        YamlDocument.read(path)
        return
    with pytest.raises(ConfigError, match=f"duplicate key `{duplicate}`"):
        YamlDocument.read(path)


def test_an_invalid_value_from_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It used to be blamed on a line of the file: "candor.yaml:2: server.port: ...".
    path = write(tmp_path, "server:\n  port: 8080\nmodels:\n  q: {base_url: 'ftp://x'}\n")
    monkeypatch.setenv("CANDOR_SERVER__PORT", "99999")
    monkeypatch.setenv("CANDOR_SERVER__PROT", "9000")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {"CANDOR_SERVER__PORT": "--port"})
    assert caught.value.message.splitlines()[1:] == [
        "  environment variable CANDOR_SERVER__PORT (set by --port): server.port: "
        "Input should be less than or equal to 65535",
        "  environment variable CANDOR_SERVER__PROT: server.prot: Extra inputs are not permitted",
        f"  {path}:4: models.q.base_url: Value error, must start with http:// or https://",
    ]


def test_an_invalid_section_from_the_environment_does_not_echo_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CANDOR_MODELS", '{"q": {"base_url": "http://u:S3cretPw@x"}}')
    with pytest.raises(ConfigError) as caught:
        load_settings(None)
    assert "environment variable CANDOR_MODELS: models.q.base_url" in caught.value.message
    assert "S3cretPw" not in caught.value.message


def test_the_demo_settings_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before, `candor demo` wrote its traffic into the operator's Redis (REDIS_URL) and took
    # their auth mode (every tour step a 401).
    from proxy.commands.demo import demo_settings

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("CANDOR_AUTH__MODE", "keys")
    monkeypatch.setenv("CANDOR_STORE__KEY_PREFIX", "prod")
    demo = demo_settings("http://127.0.0.1:9/v1", "127.0.0.1", 0)
    assert (demo.store.redis_url, demo.auth.mode, demo.store.key_prefix) == (None, "none", "candor")
    assert Settings().auth.mode == "keys"  # the proxy itself still reads it
