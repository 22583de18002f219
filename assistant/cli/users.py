"""``radassist users add|remove|list``: the web app's accounts, in the local database (argon2id hashes).

A password is never a command-line argument (it would sit in the shell history and the process list): it is asked
for twice on the terminal, or read from the first line of standard input with ``--password-stdin``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import UTC, datetime

from assistant.settings import Settings
from assistant.store.users import UserError, UserInfo, UserStore, check_user_name


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``users`` and its sub-commands."""
    users = sub.add_parser("users", help="web app accounts: add, remove, list")
    usub = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = usub.add_parser("add", help="add an account (the password is asked for, never given as an argument)")
    add.add_argument("name", help="user name: lower-case letters, digits and . _ @ -")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of standard input"
    )
    remove = usub.add_parser("remove", help="remove an account (its open browser sessions are logged out)")
    remove.add_argument("name")
    listing = usub.add_parser("list", help="list the accounts")
    listing.add_argument("--json", action="store_true", help='one JSON object: {"users": [{"name", ...}]}')
    users.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    store = UserStore.from_settings(settings)
    try:
        if args.users_command == "add":
            check_user_name(args.name)  # before asking for a password that would be thrown away
            store.add(args.name, _read_password(args.name, from_stdin=args.password_stdin))
            print(f"added user {args.name}")
            print("a web app running without log-in asks for one after its next start", file=sys.stderr)
        elif args.users_command == "remove":
            store.remove(args.name)
            print(f"removed user {args.name}")
        else:
            _print_list(store.list(), as_json=args.json)
    finally:
        store.close()
    return 0


def _read_password(name: str, *, from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password.removesuffix("\r")
        if not password:
            raise UserError("no password on standard input (one line is read)")
        return password
    if not sys.stdin.isatty():  # getpass would fall back to an echoing prompt
        raise UserError("no terminal to ask for the password on: pipe it in with --password-stdin")
    try:
        password = getpass.getpass(f"Password for {name}: ")
        again = getpass.getpass("Again: ")
    except EOFError as exc:
        raise UserError("no password given (use --password-stdin to pipe it in)") from exc
    if password != again:
        raise UserError("the two passwords differ; nothing was changed")
    return password


def _print_list(users: list[UserInfo], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"users": [_as_json(u) for u in users]}, ensure_ascii=False))
        return
    if not users:
        print("no accounts: without one (or an SSO proxy) the web app is single-user, on loopback", file=sys.stderr)
    for user in users:
        if user.source == "settings":
            print(f"{user.name}\t(from RADASSIST_AUTH_USER)")
        else:
            print(f"{user.name}\tadded {_when(user.created_at)}")


def _as_json(user: UserInfo) -> dict[str, object]:
    return {"name": user.name, "source": user.source, "created_at": _when(user.created_at)}


def _when(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
