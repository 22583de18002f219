"""One de-identification salt for several app replicas (RADASSIST_DEID_SALT_FILE): same patient, same key."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from assistant.errors import ConfigurationError
from assistant.imaging import deid
from assistant.imaging.deid import Pseudonymizer
from assistant.imaging.ingest import load_study
from assistant.settings import load_settings
from tests.assistant.imaging.ingest_fixtures import plant_phi, read, write


def _salt_file(path: Path, mode: int = 0o600) -> Path:
    path.write_text(secrets.token_bytes(32).hex() + "\n", encoding="ascii")
    path.chmod(mode)
    return path


def test_two_data_dirs_sharing_one_salt_file_give_one_patient_one_key(tmp_path: Path) -> None:
    salt = _salt_file(tmp_path / "shared_salt")
    dicom = write(plant_phi(read("CT_small.dcm")), tmp_path / "study.dcm")
    keys = []
    for replica in ("a", "b"):
        # Through the environment, as a replica's container gets it.
        settings = load_settings(
            {"RADASSIST_DATA_DIR": str(tmp_path / replica), "RADASSIST_DEID_SALT_FILE": str(salt)}
        )
        assert settings.deid_salt_file == salt
        study = load_study([dicom], settings).study
        assert study is not None and study.patient_key
        keys.append((study.patient_key, study.study_instance_uid, Pseudonymizer.from_settings(settings).uid("1.2.3")))
        assert not (tmp_path / replica / deid.SALT_FILE).exists()  # the data dir's own salt was never made
    assert keys[0] == keys[1]
    # Without the shared file each data dir makes its own salt: the same patient gets two keys (the bug fixed).
    apart = [
        load_study([dicom], load_settings({"RADASSIST_DATA_DIR": str(tmp_path / f"own-{r}")})).study for r in "ab"
    ]
    assert apart[0] is not None and apart[1] is not None
    assert apart[0].patient_key != apart[1].patient_key
    assert keys[0][0] != apart[0].patient_key


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_a_salt_file_other_users_can_read_or_change_is_refused(tmp_path: Path, mode: int) -> None:
    salt = _salt_file(tmp_path / "salt", mode)
    settings = load_settings({"RADASSIST_DATA_DIR": str(tmp_path / "data"), "RADASSIST_DEID_SALT_FILE": str(salt)})
    with pytest.raises(ConfigurationError, match=f"other users .*mode {mode:04o}.*chmod 600"):
        Pseudonymizer.from_settings(settings)
    # The data dir's own salt, loosened by hand, is refused the same way.
    own = _salt_file(tmp_path / deid.SALT_FILE, mode)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        Pseudonymizer.from_data_dir(own.parent)
    os.chmod(salt, 0o400)  # read-only for the owner is fine
    assert Pseudonymizer.from_settings(settings).patient_key("1")


def test_a_missing_or_damaged_salt_file_is_refused_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "salt"
    settings = load_settings({"RADASSIST_DATA_DIR": str(tmp_path / "data"), "RADASSIST_DEID_SALT_FILE": str(missing)})
    with pytest.raises(ConfigurationError, match="does not exist.*openssl rand -hex 32"):
        Pseudonymizer.from_settings(settings)
    assert not missing.exists()  # a replica never makes its own: it would give the patient another key
    damaged = tmp_path / "damaged"
    damaged.write_text("not hex")
    damaged.chmod(0o600)
    with pytest.raises(ConfigurationError, match="damaged"):
        Pseudonymizer.from_settings(settings.replace(deid_salt_file=damaged))


def test_default_salt_stays_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings({"RADASSIST_DATA_DIR": str(tmp_path / "data")})
    assert settings.deid_salt_file is None
    key = Pseudonymizer.from_settings(settings).patient_key("1")
    assert key == Pseudonymizer.from_data_dir(tmp_path / "data").patient_key("1")
    assert (tmp_path / "data" / deid.SALT_FILE).exists()
