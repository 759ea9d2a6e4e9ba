"""`candor keys new|admin`: make a key, print it once with the config line holding its hash."""

from __future__ import annotations

import argparse
import secrets
from typing import Any

import yaml
from pydantic import ValidationError

from proxy.auth import ADMIN_KEY_ENV, hash_key, new_key, read_pepper
from proxy.errors import ConfigError
from proxy.settings import ApiKeyEntry

FLAGS = {
    ("id",): "--id",
    ("tenant",): "--tenant",
    ("policy",): "--policy",
    ("models",): "--models",
    ("rate_limits", "requests_per_minute"): "--rpm",
    ("rate_limits", "tokens_per_minute"): "--tpm",
}


def register(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="make client and admin API keys")
    sub = keys.add_subparsers(metavar="ACTION", required=True)

    new = sub.add_parser("new", help="a client key and its auth.keys entry")
    new.add_argument("--tenant", default="default", help="tenant name (default: default)")
    new.add_argument("--policy", help="policy name (default: the model's)")
    new.add_argument("--id", dest="key_id", help="key id (default: random)")
    new.add_argument(
        "--models", help="comma-separated models the key may ask for (default: every one)"
    )
    new.add_argument("--rpm", type=int, help="requests per minute")
    new.add_argument("--tpm", type=int, help="tokens per minute")
    new.add_argument("--pepper-env", default="CANDOR_KEY_PEPPER", help="as auth.pepper_env")
    new.set_defaults(func=_new)

    admin = sub.add_parser("admin", help="an admin key and its auth.admin_key_hash")
    admin.add_argument("--pepper-env", default="CANDOR_KEY_PEPPER", help="as auth.pepper_env")
    admin.set_defaults(func=_admin)


def _new(args: argparse.Namespace) -> int:
    key = new_key()
    entry: dict[str, Any] = {
        "id": f"key_{secrets.token_hex(4)}" if args.key_id is None else args.key_id,
        "hash": hash_key(key, read_pepper(args.pepper_env)),
        "tenant": args.tenant,
    }
    if args.policy is not None:
        entry["policy"] = args.policy
    if args.models is not None:
        entry["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    limits = {"requests_per_minute": args.rpm, "tokens_per_minute": args.tpm}
    if any(v is not None for v in limits.values()):
        entry["rate_limits"] = {k: v for k, v in limits.items() if v is not None}
    _check(entry)
    print(f"key: {key}")
    print(_pepper_note(args.pepper_env))
    print("# shown once: give it to the client. Add this under auth.keys in the config:")
    print(yaml.safe_dump([entry], sort_keys=False, default_flow_style=None).rstrip())
    return 0


def _check(entry: dict[str, Any]) -> None:
    """Refuse, by its flag, a value the config would refuse when Candor starts."""
    try:
        ApiKeyEntry.model_validate(entry)
    except ValidationError as exc:
        problems = [
            f"{FLAGS.get(tuple(map(str, e['loc'])), '.'.join(map(str, e['loc'])))}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise ConfigError("; ".join(problems)) from None


def _admin(args: argparse.Namespace) -> int:
    key = new_key()
    digest = hash_key(key, read_pepper(args.pepper_env))
    print(f"admin key: {key}")
    print(_pepper_note(args.pepper_env))
    print(f"# shown once. Either export {ADMIN_KEY_ENV} with it, or put this in the config:")
    print(f"auth:\n  admin_key_hash: {digest}")
    return 0


def _pepper_note(variable: str) -> str:
    """Whether the hash holds a pepper: a server whose pepper differs refuses the key, unsaid."""
    if read_pepper(variable) is None:
        return f"# hashed without a pepper ({variable} is not set): the server must have none"
    return f"# hashed with the pepper in {variable}: the server must have the same one"
