"""The typed policy: what Candor does with an answer the detector judged.

One YAML file in `policies/` is one policy, named by its file name (`default.yaml` is
`default`). A model's route names its policy; an API key may name another.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from proxy.detect import Category, Verdict
from proxy.errors import ConfigError
from proxy.policy.actions import ActionName, Wording
from proxy.yamlfile import YamlDocument

REPO_DEFAULT = Path(__file__).resolve().parents[2] / "policies" / "default.yaml"
ACTING_CATEGORIES = frozenset(c for c in Category if c is not Category.NONE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StreamPolicy(_Strict):
    """How long a stream may be held back for judgment (reroute and block only)."""

    hold_chars: int = Field(600, ge=0, le=20_000)
    hold_ms: int = Field(2_500, ge=0, le=60_000)
    after_release: Literal["error", "flag"] = "flag"


class PreemptPolicy(_Strict):
    """Send a request straight to the fallback chain, before the primary is asked."""

    topics: frozenset[str] = frozenset()
    rate_threshold: float | None = Field(None, gt=0, le=1)
    min_samples: int = Field(20, ge=1)
    remembered: bool = True


class Policy(_Strict):
    """One policy file."""

    name: str = "default"
    action: ActionName = ActionName.FLAG
    categories: frozenset[Category] = ACTING_CATEGORIES
    political_only: bool = False
    fallbacks: tuple[str, ...] = ()
    outage_fallbacks: tuple[str, ...] = ()
    stream: StreamPolicy = StreamPolicy()
    preempt: PreemptPolicy = PreemptPolicy()
    shadow_of: ActionName = ActionName.REROUTE
    hedge: bool = False
    scrub_history: bool = False
    block_message: str = (
        "This answer was withheld: the model declined or deflected the question, and this "
        "service does not pass such answers on."
    )
    annotate_note: str = (
        "\n\n[Note from this service: this answer may be censored or incomplete. The model "
        "appears to have declined or deflected the question.]"
    )
    history_placeholder: str = "[An earlier answer was removed because it was censored.]"

    @field_validator("shadow_of")
    @classmethod
    def _acts(cls, value: ActionName) -> ActionName:
        if value in (ActionName.PASS, ActionName.SHADOW):
            raise ValueError(
                "must be an action that does something: flag, annotate, reroute, block"
            )
        return value

    @field_validator("categories", mode="before")
    @classmethod
    def _no_none(cls, value: object) -> object:
        if isinstance(value, list | tuple | set | frozenset) and "none" in value:
            raise ValueError("`none` is the clean category; it cannot trigger an action")
        return value

    def acts_on(self, category: Category, political: bool) -> bool:
        """Whether a censored verdict of this category triggers the action."""
        return category in self.categories and (political or not self.political_only)

    def acts_on_verdict(self, verdict: Verdict) -> bool:
        """Whether a verdict triggers the action: censored, of a category it acts on."""
        return verdict.censored and self.acts_on(verdict.category, verdict.political)

    def fallbacks_for(self, model: str) -> tuple[str, ...]:
        """The censorship chain for a censored answer of `model`: never `model` again."""
        return tuple(m for m in self.fallbacks if m != model)

    def ends_as(self, action: ActionName, model: str) -> ActionName:
        """What `action` comes to for a censored answer of `model`: a reroute with no other
        model to ask ends flagged (`fallbacks_exhausted`). What a shadow policy records."""
        if action is ActionName.REROUTE and not self.fallbacks_for(model):
            return ActionName.FLAG
        return action

    def shadow_would(self, would: ActionName | None, model: str) -> ActionName | None:
        """What a shadow records for a censored answer of `model`: what the action it shadows
        (`would`; None when it shadows nothing) comes to (`ends_as`)."""
        return None if would is None else self.ends_as(would, model)

    @property
    def reroutes(self) -> bool:
        """Whether censored answers are re-routed, or (under shadow) would be."""
        shadowed = self.action is ActionName.SHADOW and self.shadow_of is ActionName.REROUTE
        return self.action is ActionName.REROUTE or shadowed

    @property
    def wording(self) -> Wording:
        return Wording(self.block_message, self.annotate_note)


class PolicySet:
    """Every policy of a `policies/` folder, by name."""

    def __init__(self, policies: dict[str, Policy], folder: Path | None = None) -> None:
        if "default" not in policies:
            policies = {**policies, "default": Policy()}
        self._policies = policies
        self._folder = folder

    def __getitem__(self, name: str) -> Policy:
        return self._policies[name]

    def __contains__(self, name: object) -> bool:
        return name in self._policies

    @property
    def names(self) -> list[str]:
        return sorted(self._policies)

    def values(self) -> list[Policy]:
        return list(self._policies.values())

    def check_models(
        self,
        models: set[str],
        routes: dict[str, str],
        keys: Sequence[tuple[str, str | None]] = (),
    ) -> None:
        """Every route and client key names a known policy; the fallbacks of every policy a
        route, a key or the default leads to are routed models.

        `keys` holds each client key's id and policy (None: the model's own), in config order.
        An unknown name would otherwise fall back to `default` at request time, unseen.
        """
        for model, policy_name in sorted(routes.items()):
            if policy_name not in self:
                raise ConfigError(
                    f"models.{model}.policy: no policy `{policy_name}` "
                    f"(known: {', '.join(self.names)})"
                )
        for index, (key_id, key_policy) in enumerate(keys):
            if key_policy is not None and key_policy not in self:
                raise ConfigError(
                    f"auth.keys[{index}].policy: key {key_id} names no policy `{key_policy}` "
                    f"(known: {', '.join(self.names)})"
                )
        reachable = {*routes.values(), *(name for _, name in keys if name), "default"}
        for policy in (self._policies[n] for n in sorted(reachable)):
            for chain in (policy.fallbacks, policy.outage_fallbacks):
                for name in chain:
                    if name not in models:
                        raise ConfigError(
                            f"policy {policy.name}: fallback `{name}` is not a configured model"
                        )

    def reroutes_without_fallbacks(
        self, routes: dict[str, str], keys: Sequence[tuple[str, str | None]] = ()
    ) -> list[str]:
        """One line for each policy a route or a client key leads to whose action is reroute
        (or shadow of reroute) with no fallback to re-route to (none, or only the routed model
        itself): its censored answers can only go out flagged (`fallbacks_exhausted`), and a
        shadow of it records `shadow_would_flag`, not `shadow_would_reroute`.

        A warning, not an error: such a policy still holds streams and flags. A policy nothing
        leads to is never applied, so it is not named.
        """
        users: dict[str, list[str]] = {}
        for model, name in sorted(routes.items()):
            users.setdefault(name, []).append(f"models.{model}")
        for index, (key_id, key_policy) in enumerate(keys):
            if key_policy is not None:
                users.setdefault(key_policy, []).append(f"auth.keys[{index}] ({key_id})")
        lines = []
        for name in sorted(users):
            policy = self._policies.get(name)
            if policy is None or not policy.reroutes:
                continue
            where = f"{self._folder / name}.yaml" if self._folder else f"policy {name}"
            shadow = policy.action is ActionName.SHADOW
            what = "shadow of reroute" if shadow else "reroute"
            if not policy.fallbacks:
                tail = (
                    "a shadow records they would be flagged (shadow_would_flag); name fallback "
                    "models, or set shadow_of: flag or block"
                    if shadow
                    else "name fallback models, or set action: flag or block"
                )
                lines.append(
                    f"{where}: action is {what} but `fallbacks` is empty: censored answers "
                    f"of {', '.join(users[name])} can only be flagged (fallbacks_exhausted); "
                    + tail
                )
                continue
            alone = [
                m for m, n in sorted(routes.items()) if n == name and not policy.fallbacks_for(m)
            ]
            if alone:
                lines.append(
                    f"{where}: action is {what} but its only fallback is the model itself for "
                    f"{', '.join(f'models.{m}' for m in alone)} (a model that censored is never "
                    "asked again): their censored answers can only be flagged "
                    "(fallbacks_exhausted)"
                    + ("; a shadow records shadow_would_flag" if shadow else "")
                )
        return lines

    def check_topics(self, known: Sequence[str]) -> None:
        """Every `preempt.topics` entry is a topic the detector knows (`known`); a typo or a
        wrong case would never match, and pre-emption would silently never fire."""
        for name in self.names:
            unknown = sorted(self._policies[name].preempt.topics - set(known))
            if unknown:
                where = f"{self._folder / name}.yaml" if self._folder else f"policy {name}"
                raise ConfigError(
                    f"{where}: preempt.topics: unknown topic(s) {', '.join(unknown)} "
                    f"(known: {', '.join(known)})"
                )


def load_policy(path: Path) -> Policy:
    doc = YamlDocument.read(path)
    data = {"name": path.stem, **doc.data}
    if data["name"] != path.stem:
        raise doc.problem(("name",), f"must match the file name `{path.stem}`")
    try:
        return Policy(**data)
    except ValidationError as exc:
        raise doc.describe(exc) from None


def load_policies(folder: Path) -> PolicySet:
    """Every `*.yaml` directly in `folder` (sub-folders hold detector data, not policies)."""
    if not folder.is_dir():
        return PolicySet({})
    return PolicySet({p.stem: load_policy(p) for p in sorted(folder.glob("*.yaml"))}, folder)
