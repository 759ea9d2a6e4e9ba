"""Policies: typed, documented by the shipped default, errors naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.detect import Category
from proxy.errors import ConfigError
from proxy.policy.actions import ActionName
from proxy.policy.model import REPO_DEFAULT, Policy, load_policies, load_policy


def test_shipped_default_is_the_documented_defaults() -> None:
    shipped = load_policy(REPO_DEFAULT)
    assert shipped == Policy(name="default")
    assert shipped.action is ActionName.FLAG


def test_error_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "strict.yaml"
    path.write_text("action: reroute\nstream:\n  hold_ms: -5\n")
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    assert f"{path}:3: stream.hold_ms" in caught.value.message


def test_unknown_action_and_field_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text("action: explode\nfalbacks: [x]\n")
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    assert f"{path}:1: action" in caught.value.message
    assert f"{path}:2: falbacks" in caught.value.message


def test_none_is_not_an_acting_category(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("categories: [refusal, none]\n")
    with pytest.raises(ConfigError, match="categories"):
        load_policy(path)


def test_political_only_spares_generic_refusals() -> None:
    policy = Policy(political_only=True)
    assert policy.acts_on(Category.REFUSAL, political=True)
    assert not policy.acts_on(Category.REFUSAL, political=False)
    assert not Policy(categories=frozenset({Category.REFUSAL})).acts_on(
        Category.NON_ANSWER, political=False
    )


def test_fallbacks_must_be_configured_models(tmp_path: Path) -> None:
    (tmp_path / "rr.yaml").write_text("action: reroute\nfallbacks: [nowhere]\n")
    policies = load_policies(tmp_path)
    assert policies.names == ["default", "rr"]
    with pytest.raises(ConfigError, match="fallback `nowhere`"):
        policies.check_models({"qwen"}, {"qwen": "rr"})
    policies.check_models({"qwen"}, {"qwen": "default"})  # unused policies are not checked
    with pytest.raises(ConfigError, match="no policy `missing`"):
        policies.check_models({"qwen"}, {"qwen": "missing"})


def test_a_client_keys_policy_must_exist_and_its_fallbacks_be_models(tmp_path: Path) -> None:
    (tmp_path / "rr.yaml").write_text("action: reroute\nfallbacks: [nowhere]\n")
    policies = load_policies(tmp_path)
    routes = {"qwen": "default"}
    # An unknown name used to fall back to `default` at request time, unseen.
    with pytest.raises(ConfigError) as caught:
        policies.check_models({"qwen"}, routes, [("k0", None), ("k1", "nosuch")])
    assert caught.value.message == (
        "auth.keys[1].policy: key k1 names no policy `nosuch` (known: default, rr)"
    )
    # A policy only a key leads to is checked too: its reroute would end `fallbacks_exhausted`.
    with pytest.raises(ConfigError, match="policy rr: fallback `nowhere`"):
        policies.check_models({"qwen"}, routes, [("k1", "rr")])
    policies.check_models({"qwen", "nowhere"}, routes, [("k0", None), ("k1", "rr")])


def test_a_reroute_with_nowhere_to_go_is_named(tmp_path: Path) -> None:
    # Accepted without a word before: such a policy can only ever flag (fallbacks_exhausted).
    (tmp_path / "bare.yaml").write_text("action: reroute\n")
    (tmp_path / "self.yaml").write_text("action: reroute\nfallbacks: [qwen]\n")
    (tmp_path / "fine.yaml").write_text("action: reroute\nfallbacks: [gpt]\n")
    (tmp_path / "unused.yaml").write_text("action: reroute\n")
    policies = load_policies(tmp_path)
    routes = {"qwen": "self", "glm": "self", "ds": "fine", "gpt": "default"}
    warned = policies.reroutes_without_fallbacks(routes, [("k0", None), ("k1", "bare")])
    assert warned == [
        f"{tmp_path / 'bare.yaml'}: action is reroute but `fallbacks` is empty: censored answers "
        "of auth.keys[1] (k1) can only be flagged (fallbacks_exhausted); name fallback models, "
        "or set action: flag or block",
        f"{tmp_path / 'self.yaml'}: action is reroute but its only fallback is the model itself "
        "for models.qwen (a model that censored is never asked again): their censored answers "
        "can only be flagged (fallbacks_exhausted)",
    ]
    # A policy nothing leads to is never applied: not named.
    assert policies.reroutes_without_fallbacks({"ds": "fine"}) == []


def test_a_shadow_of_a_reroute_with_nowhere_to_go_is_named(tmp_path: Path) -> None:
    # Before, it was not named, and it recorded `shadow_would_reroute` where a real reroute
    # would have ended flagged (`fallbacks_exhausted`).
    (tmp_path / "bare.yaml").write_text("action: shadow\n")
    (tmp_path / "self.yaml").write_text("action: shadow\nfallbacks: [qwen]\n")
    (tmp_path / "block.yaml").write_text("action: shadow\nshadow_of: block\n")
    policies = load_policies(tmp_path)
    routes = {"qwen": "self", "glm": "self", "ds": "bare", "gpt": "block"}
    assert policies.reroutes_without_fallbacks(routes) == [
        f"{tmp_path / 'bare.yaml'}: action is shadow of reroute but `fallbacks` is empty: "
        "censored answers of models.ds can only be flagged (fallbacks_exhausted); a shadow "
        "records they would be flagged (shadow_would_flag); name fallback models, or set "
        "shadow_of: flag or block",
        f"{tmp_path / 'self.yaml'}: action is shadow of reroute but its only fallback is the "
        "model itself for models.qwen (a model that censored is never asked again): their "
        "censored answers can only be flagged (fallbacks_exhausted); a shadow records "
        "shadow_would_flag",
    ]


def test_a_reroute_with_no_other_model_to_ask_ends_as_a_flag() -> None:
    policy = Policy(action="shadow", fallbacks=("qwen", "gpt"))
    assert policy.ends_as(ActionName.REROUTE, "glm") is ActionName.REROUTE
    assert policy.ends_as(ActionName.REROUTE, "gpt") is ActionName.REROUTE  # qwen is left
    assert Policy(fallbacks=("qwen",)).ends_as(ActionName.REROUTE, "qwen") is ActionName.FLAG
    assert Policy().ends_as(ActionName.REROUTE, "qwen") is ActionName.FLAG
    assert Policy().ends_as(ActionName.BLOCK, "qwen") is ActionName.BLOCK


def test_a_policy_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(b"\xff\xfe bad")
    with pytest.raises(ConfigError, match=rf"{path}:1: not UTF-8 text"):
        load_policy(path)


def test_preempt_topics_must_be_topics_the_detector_knows(tmp_path: Path) -> None:
    (tmp_path / "pre.yaml").write_text("preempt:\n  topics: [tiananmen, Taiwan, tibett]\n")
    policies = load_policies(tmp_path)
    # A wrong case or a typo never matched: pre-emption silently never fired.
    with pytest.raises(ConfigError) as caught:
        policies.check_topics(("tiananmen", "taiwan", "tibet"))
    assert caught.value.message == (
        f"{tmp_path / 'pre.yaml'}: preempt.topics: unknown topic(s) Taiwan, tibett "
        "(known: tiananmen, taiwan, tibet)"
    )
    policies.check_topics(("tiananmen", "taiwan", "tibet", "Taiwan", "tibett"))


def test_a_duplicate_key_in_a_policy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("action: reroute\nfallbacks: [a]\naction: flag\n")
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    assert caught.value.message == f"{path}:3: duplicate key `action`"


@pytest.mark.parametrize("would", ["pass", "shadow"])
def test_a_shadow_of_nothing_is_refused(would: str) -> None:
    with pytest.raises(ValueError, match="an action that does something"):
        Policy(action="shadow", shadow_of=ActionName(would))
