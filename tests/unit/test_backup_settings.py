from __future__ import annotations

from pathlib import Path

import pytest

from davsync.app.backup_config import parse_backup
from davsync.backup.settings import BackupConfig, is_loopback_url
from davsync.backup.store import NotFound, RetryingStore, StoreError
from davsync.config import EncryptionMode, load_config
from davsync.errors import ConfigError

BASE = """
[server]
url = "http://127.0.0.1:9/"
username = "u"
[backup]
bucket = "bkt"
passphrase = "Corr3ct-horse"
"""


def load(tmp_path: Path, extra: str) -> BackupConfig:
    path = tmp_path / "config.toml"
    path.write_text(BASE + extra, encoding="utf-8")
    return parse_backup(load_config(path))


def test_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'images = ["~/Pictures"]\n')
    assert cfg.encryption == "client" and cfg.retention_days == 30
    assert cfg.roots["images"] == [Path.home() / "Pictures"]
    assert cfg.credentials() is None


@pytest.mark.parametrize(("extra", "key", "words"), [
    ('encryption = "sse-c"\nendpoint = "http://s3.example.org"\n', "encryption", "https://"),
    ('encryption = "aes"\n', "encryption", "must be one of"),
    ('passphrase_command = "echo x"\n', "passphrase", "not both"),
    ('access_key = "a"\n', "secret_key", "required"),
    ('imagez = ["x"]\n', "imagez", "did you mean 'images'"),
    ('endpoint = "s3.example.org"\n', "endpoint", "https://"),
])
def test_errors_name_the_key(tmp_path: Path, extra: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        cfg = load(tmp_path, extra)
        cfg.credentials()
    assert f"[backup] {key}" in str(err.value) and words in str(err.value)


def test_sse_c_over_loopback_http_is_allowed(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'encryption = "sse-c"\nendpoint = "http://127.0.0.1:9000"\n')
    assert cfg.encryption == "sse-c"
    assert is_loopback_url("http://[::1]:9000") and is_loopback_url("http://localhost/")
    assert not is_loopback_url("http://10.0.0.1/")


class Flaky:
    where = "flaky"

    def __init__(self, failures: int, transient: bool) -> None:
        self.failures = failures
        self.transient = transient
        self.calls = 0

    def get(self, name: str) -> bytes:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreError("boom", transient=self.transient)
        return b"ok"

    def head(self, name: str) -> int | None:
        raise NotFound("missing")


def test_retrying_store_retries_only_transient_errors() -> None:
    sleeps: list[float] = []
    flaky = Flaky(2, transient=True)
    store = RetryingStore(flaky, attempts=3, sleep=sleeps.append)  # type: ignore[arg-type]
    assert store.get("x") == b"ok" and flaky.calls == 3 and len(sleeps) == 2
    hard = Flaky(1, transient=False)
    with pytest.raises(StoreError):
        RetryingStore(hard, sleep=sleeps.append).get("x")  # type: ignore[arg-type]
    assert hard.calls == 1
    with pytest.raises(NotFound):
        RetryingStore(hard, sleep=sleeps.append).head("x")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["My_Bucket", "-bkt", "bkt-", "a..b", "192.168.1.1",
                                  "x" * 64, "UPPER"])
def test_an_invalid_bucket_name_is_a_config_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="is not a valid S3 bucket name"):
        path = tmp_path / "config.toml"
        path.write_text(BASE.replace('"bkt"', f'"{name}"'), encoding="utf-8")
        parse_backup(load_config(path))


@pytest.mark.parametrize("name", ["bkt", "davsync-backup.2024", "a1b", "x" * 63])
def test_valid_bucket_names_pass(tmp_path: Path, name: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(BASE.replace('"bkt"', f'"{name}"'), encoding="utf-8")
    assert parse_backup(load_config(path)).bucket == name


def test_a_category_takes_one_path_or_a_list_and_choices_are_enums(tmp_path: Path) -> None:
    cfg = load(tmp_path, 'images = "pics"\nvideos = ["~/Videos", "$HOME/More"]\n'
                         'encryption = "client"\n')
    assert cfg.roots["images"] == [tmp_path / "pics"]
    assert cfg.roots["videos"] == [Path.home() / "Videos", Path.home() / "More"]
    assert cfg.encryption is EncryptionMode.CLIENT


@pytest.mark.parametrize(("extra", "message"), [
    ('prefix = ""\n', "[backup] prefix: must not be empty"),
    ("retention_days = 0\n", "[backup] retention_days: must be between 1 and 36500, not 0"),
    ("unmetered_only = 1\n", "[backup] unmetered_only: must be true or false, not int 1"),
    ('secret_key = 5\n', "[backup] secret_key: must be a string, not int 5"),
])
def test_each_key_is_checked_when_the_file_is_read(tmp_path: Path, extra: str,
                                                   message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(BASE + extra, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path} {message}"
