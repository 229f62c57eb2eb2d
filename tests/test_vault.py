"""The vault on its own: AES-GCM at rest in the state database, the key's two sources, and
the errors a changed or malformed key gives (naming the secret or the variable, never a value)."""

from __future__ import annotations

import base64
import os
import secrets
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from lepton_platform.config import ConfigError
from lepton_platform.vault import KEY_ENV, SecretError, SecretMissing, SecretUnreadable, Vault, parse_key
from tests.test_cli_run import lepton_cli

VALUE = "s3cr3t-" + secrets.token_hex(8)


@pytest.fixture
def vault(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    opened = Vault(tmp_path / "state.db", tmp_path)
    yield opened
    opened.close()


def everything_under(folder) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_values_are_encrypted_at_rest_and_come_back(vault, tmp_path):
    assert not vault.key_path.exists(), "no key file until a secret needs one"
    assert vault.set("HF_TOKEN", VALUE) is True
    assert stat.S_IMODE(os.stat(vault.key_path).st_mode) == 0o600
    assert vault.set("HF_TOKEN", VALUE) is False, "the same value again changes nothing"
    assert vault.set("OTHER", "é\n=x") is True
    assert vault.get("HF_TOKEN") == VALUE and vault.get("OTHER") == "é\n=x"
    assert vault.values(["OTHER", "HF_TOKEN"]) == {"OTHER": "é\n=x", "HF_TOKEN": VALUE}
    assert vault.missing(["HF_TOKEN", "NOPE", "ALSO_NOPE"]) == ["NOPE", "ALSO_NOPE"]
    listed = vault.list()
    assert [s["name"] for s in listed] == ["HF_TOKEN", "OTHER"] and VALUE not in repr(listed)
    first = vault.info("HF_TOKEN")
    assert vault.set("HF_TOKEN", VALUE + "-2") is True
    second = vault.info("HF_TOKEN")
    assert second["version"] == first["version"] + 1 and second["created_at"] == first["created_at"] <= second["updated_at"]
    on_disk = everything_under(tmp_path)  # the database, its WAL and the key file
    assert on_disk and VALUE.encode() not in on_disk and "é\n=x".encode() not in on_disk

    vault.remove("OTHER")
    with pytest.raises(SecretMissing, match="secret 'OTHER' is not set"):
        vault.get("OTHER")
    with pytest.raises(SecretMissing, match="secrets NOPE, OTHER are not set"):
        vault.values(["HF_TOKEN", "NOPE", "OTHER"])
    with pytest.raises(SecretMissing):
        vault.remove("OTHER")


def test_a_changed_key_or_a_moved_row_names_the_secret_and_never_its_value(vault, tmp_path, monkeypatch):
    vault.set("HF_TOKEN", VALUE)
    vault.set("OTHER", "other-value")
    # A row copied under another name does not decrypt: the name is the associated data.
    vault._db.execute(
        "UPDATE secrets SET nonce = (SELECT nonce FROM secrets WHERE name = 'HF_TOKEN'), "
        "ciphertext = (SELECT ciphertext FROM secrets WHERE name = 'HF_TOKEN') WHERE name = 'OTHER'"
    )
    with pytest.raises(SecretUnreadable, match="secret 'OTHER' cannot be decrypted"):
        vault.get("OTHER")

    monkeypatch.setenv(KEY_ENV, base64.urlsafe_b64encode(os.urandom(32)).decode())
    other = Vault(tmp_path / "state.db", tmp_path)
    with pytest.raises(SecretUnreadable) as wrong:
        other.values(["HF_TOKEN"])
    message = str(wrong.value)
    assert message.startswith("secret 'HF_TOKEN' cannot be decrypted with the key in LEPTON_SECRET_KEY: the key changed")
    assert VALUE not in message and wrong.value.__cause__ is None and wrong.value.__suppress_context__
    assert other.set("HF_TOKEN", "new") is True, "setting it again under the new key works"
    assert other.get("HF_TOKEN") == "new"
    other.close()


def test_the_key_comes_from_the_environment_in_either_base64(tmp_path, monkeypatch):
    key = os.urandom(32)
    for text in (base64.urlsafe_b64encode(key).decode().rstrip("="), base64.b64encode(key).decode()):
        assert parse_key(text, KEY_ENV) == key
    monkeypatch.setenv(KEY_ENV, base64.b64encode(key).decode())
    vault = Vault(tmp_path / "state.db", tmp_path)
    vault.set("A", "b")
    assert not (tmp_path / "secret.key").exists(), "a key from the environment is never written down"
    vault.close()


@pytest.mark.parametrize("bad", ["short", base64.b64encode(b"x" * 31).decode(), base64.b64encode(b"x" * 33).decode(), "é" * 44, "!" * 44])
def test_a_malformed_key_is_one_clear_error_naming_its_source(tmp_path, monkeypatch, bad):
    monkeypatch.setenv(KEY_ENV, bad)
    with pytest.raises(ConfigError, match=r"^LEPTON_SECRET_KEY is not a secret key: expected 32 random bytes in base64") as refused:
        Vault(tmp_path / "state.db", tmp_path)
    assert bad not in str(refused.value)


def test_a_malformed_key_file_is_named(vault, tmp_path):
    vault.key_path.write_text("not a key\n")
    with pytest.raises(SecretError, match=f"^{vault.key_path} is not a secret key"):
        vault.set("A", "b")


def test_the_key_file_is_created_once_whole_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    vaults = [Vault(tmp_path / "state.db", tmp_path) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda v: v._aead(), vaults))
    assert len({v._key for v in vaults}) == 1 and [p.name for p in tmp_path.glob("*secret.key*")] == ["secret.key"]
    assert stat.S_IMODE(os.stat(tmp_path / "secret.key").st_mode) == 0o600
    for v in vaults:
        v.close()


def test_lepton_up_refuses_a_malformed_key_in_one_line(tmp_path):
    refused = lepton_cli("up", "--port", "1", env={"LEPTON_HOME": str(tmp_path / "home"), KEY_ENV: "not-a-key"})
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: LEPTON_SECRET_KEY is not a secret key")
    assert "Traceback" not in refused.stderr and "not-a-key" not in refused.stderr
