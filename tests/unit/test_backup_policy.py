from __future__ import annotations

import pytest

from davsync.backup.policy import check_passphrase, passphrase_problems
from davsync.errors import ConfigError
from davsync.secret import Secret


@pytest.mark.parametrize(("value", "missing"), [
    ("Corr3ct-horse", []),
    ("Sh0rt!", ["at least 8 characters"]),
    ("no-digits-Here", ["a digit"]),
    ("NoSpecial123", ["a special character"]),
    ("all-lower-123", ["an upper-case letter"]),
    ("ALL-UPPER-123", ["a lower-case letter"]),
    ("", ["at least 8 characters", "a digit", "a special character", "an upper-case letter",
          "a lower-case letter"]),
    ("Ünïcödé-pässwörd-1", []),
])
def test_policy_names_exactly_what_is_missing(value: str, missing: list[str]) -> None:
    assert passphrase_problems(Secret(value)) == missing


def test_error_names_the_setting_but_never_the_passphrase() -> None:
    with pytest.raises(ConfigError) as err:
        check_passphrase(Secret("weakpassword"), "config.toml [backup] passphrase")
    text = str(err.value)
    assert "config.toml [backup] passphrase" in text and "a digit" in text
    assert "weakpassword" not in text
