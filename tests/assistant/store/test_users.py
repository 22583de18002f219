"""Web app accounts in the local database: argon2id hashes, never the password; the settings' pair is one more."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from assistant.settings import load_settings
from assistant.store.users import UserError, UserStore


@pytest.fixture()
def users(database: Path | str) -> UserStore:
    store = UserStore(database)
    yield store  # type: ignore[misc]
    store.close()


def stored_hash(store: UserStore, name: str) -> str:
    with store._engine().connect() as conn:
        return str(conn.execute(sa.text("SELECT password_hash FROM users WHERE name = :n"), {"n": name}).scalar())


def test_the_database_keeps_a_salted_argon2id_hash_not_the_password(users: UserStore) -> None:
    users.add("alice", "correct horse")
    users.add("bob", "correct horse")
    alice, bob = stored_hash(users, "alice"), stored_hash(users, "bob")
    assert alice.startswith("$argon2id$") and "correct horse" not in alice
    assert alice != bob  # same password, different salt
    if users.path is not None:  # a SQLite file
        assert b"correct horse" not in users.path.read_bytes()
        assert stat.S_IMODE(users.path.stat().st_mode) == 0o600  # the shared database rules: owner-only


def test_verify_accepts_the_password_and_rejects_anything_else(users: UserStore) -> None:
    users.add("alice", "correct horse")
    assert users.verify("alice", "correct horse")
    assert not users.verify("alice", "correct horsE")
    assert not users.verify("alice", "")
    assert not users.verify("Alice", "correct horse")  # names are exact (lower case)
    assert not users.verify("nobody", "correct horse")


def test_a_removed_user_can_no_longer_log_in(users: UserStore) -> None:
    users.add("alice", "correct horse")
    users.remove("alice")
    assert not users.verify("alice", "correct horse")
    assert not users.exists("alice") and not users.has_accounts()
    with pytest.raises(UserError, match="no user 'alice'"):
        users.remove("alice")


def test_list_names_every_account_without_its_hash(users: UserStore) -> None:
    assert users.list() == [] and not users.has_accounts()
    users.add("carol", "password-3")
    users.add("alice@hospital.org", "password-1")
    listed = users.list()
    assert [u.name for u in listed] == ["alice@hospital.org", "carol"]
    assert all(u.source == "database" and u.created_at for u in listed)
    assert users.has_accounts()


def test_adding_a_taken_name_is_refused_and_keeps_the_old_password(users: UserStore) -> None:
    users.add("alice", "first password")
    with pytest.raises(UserError, match="exists already"):
        users.add("alice", "second password")
    assert users.verify("alice", "first password") and not users.verify("alice", "second password")


@pytest.mark.parametrize(
    ("name", "password", "fragment"),
    [
        ("Alice", "long enough", "did you mean 'alice'"),
        ("", "long enough", "invalid user name"),
        ("al ice", "long enough", "invalid user name"),
        ("-alice", "long enough", "starting with a letter or digit"),
        ("a" * 65, "long enough", "1-64 characters"),
        ("alice", "short", "at least 8 characters"),
        ("alice", "x" * 1025, "at most 1024 characters"),
    ],
)
def test_bad_names_and_passwords_are_refused_with_the_rule(
    users: UserStore, name: str, password: str, fragment: str
) -> None:
    with pytest.raises(UserError, match=fragment):
        users.add(name, password)
    assert users.list() == []


def test_the_settings_pair_is_one_more_account(tmp_path: Path) -> None:
    settings = load_settings(env={}, data_dir=tmp_path, auth_user="Rad", auth_password="legacy-pass")
    users = UserStore.from_settings(settings)
    try:
        assert users.has_accounts() and users.exists("Rad")  # the old pair's name is kept as it was
        assert users.verify("Rad", "legacy-pass") and not users.verify("Rad", "wrong")
        users.add("alice", "correct horse")
        assert [(u.name, u.source) for u in users.list()] == [("Rad", "settings"), ("alice", "database")]
        with pytest.raises(UserError, match="RADASSIST_AUTH_USER"):
            users.remove("Rad")
    finally:
        users.close()
    taken = UserStore(settings.db_path, ("alice2", "legacy-pass"))
    try:
        with pytest.raises(UserError, match="RADASSIST_AUTH_USER"):
            taken.add("alice2", "another password")
    finally:
        taken.close()
