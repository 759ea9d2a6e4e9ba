"""`candor keys new|admin`: make a key, print it once with the config line holding its hash."""

from __future__ import annotations

import argparse
import os
import secrets
from typing import Any

import yaml

from proxy.auth import ADMIN_KEY_ENV, hash_key, new_key


def register(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="make client and admin API keys")
    sub = keys.add_subparsers(metavar="ACTION", required=True)

    new = sub.add_parser("new", help="a client key and its auth.keys entry")
    new.add_argument("--tenant", default="default")
    new.add_argument("--policy", help="policy name (default: the model's)")
    new.add_argument("--id", dest="key_id", help="key id (default: random)")
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
        "id": args.key_id or f"key_{secrets.token_hex(4)}",
        "hash": hash_key(key, os.environ.get(args.pepper_env) or None),
        "tenant": args.tenant,
    }
    if args.policy:
        entry["policy"] = args.policy
    limits = {"requests_per_minute": args.rpm, "tokens_per_minute": args.tpm}
    if any(limits.values()):
        entry["rate_limits"] = {k: v for k, v in limits.items() if v}
    print(f"key: {key}")
    print("# shown once: give it to the client. Add this under auth.keys in the config:")
    print(yaml.safe_dump([entry], sort_keys=False, default_flow_style=None).rstrip())
    return 0


def _admin(args: argparse.Namespace) -> int:
    key = new_key()
    digest = hash_key(key, os.environ.get(args.pepper_env) or None)
    print(f"admin key: {key}")
    print(f"# shown once. Either export {ADMIN_KEY_ENV} with it, or put this in the config:")
    print(f"auth:\n  admin_key_hash: {digest}")
    return 0
