"""Reading a TOML file against a declarative schema, with errors that name the file, the key and
what is wrong.

A schema is a tree of `msgspec.Struct` classes (unknown keys forbidden, strict types, bounds as
`msgspec.Meta`). msgspec checks a file in one pass and stops at the first problem, but its
message is terse (``Expected `int` >= 1 - at `$.server.concurrency` ``). `explain` keeps only
where it points, and says what is wrong in our words from the schema and the value found there:
"config.toml [server] concurrency: must be between 1 and 32, not 0", "unknown key (did you mean
'server'?)". The client's file and the self-hosted server's file are both read this way, so every
configuration error looks the same and exits with code 2.

A field may carry `Meta(extra={"expect": "a list of paths"})` to say what it must be when the
generic wording ("must be a string") would not help.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from davsync.errors import ConfigError
from davsync.secret import Secret

S = TypeVar("S", bound="Table")

# Where msgspec says the problem is: "... - at `$.server.concurrency`" (absent at the root).
# Patterns, not compiled: only an error needs them, and a no-op sync reads the config first.
_AT = r"(?P<what>.*) - at `\$(?P<path>[^`]*)`"
_SEGMENT = r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]"
_NAMED_KEY = r"(?P<how>unknown|missing required) field `(?P<key>[^`]*)`"
_MISSING: Any = object()


class Table(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The base of every schema table: a key it does not declare is an error, never silently
    ignored, and a loaded table cannot be changed behind the loader's back."""


#: Where a message sends a user who needs an example configuration (works from any install).
EXAMPLE_HINT = "`davsync example-config` prints a commented example"


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning every failure into a ConfigError naming the file."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found ({EXAMPLE_HINT})"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def key_error(where: str, key: str, problem: str) -> ConfigError:
    """The one shape of a configuration error: "<file> [table] key: what is wrong"."""
    return ConfigError(f"{where} {key}: {problem}")


def decode(raw: Mapping[str, Any], schema: type[S], where: str) -> S:
    """`raw` (a parsed TOML table) as `schema`; a ConfigError naming the key when it does not fit.
    `where` names the table in errors, e.g. the file's path."""
    try:
        return msgspec.convert(raw, schema, strict=True, dec_hook=_decode_custom)
    except msgspec.ValidationError as exc:
        raise explain(exc, raw, schema, where) from None


def resolve_path(value: str, base_dir: Path) -> Path:
    """A configured path: `$VARS` and `~` expanded, relative to the config file's folder."""
    path = Path(os.path.expandvars(value)).expanduser()
    return path if path.is_absolute() else base_dir / path


def _decode_custom(kind: type, value: Any) -> Any:
    """Types TOML has no word for. A refusal here is explained by `explain`, like any other."""
    if kind is Secret and isinstance(value, str) and value.strip():
        return Secret(value)
    raise ValueError("not accepted")  # msgspec turns this into a ValidationError


def explain(exc: msgspec.ValidationError, raw: Mapping[str, Any], schema: type[msgspec.Struct],
            where: str) -> ConfigError:
    """Our message for msgspec's first problem: walk its path through the schema and the raw
    table side by side, then describe the field reached and the value found there."""
    from msgspec import inspect

    text = str(exc)
    at = re.fullmatch(_AT, text, re.DOTALL)
    what, path = (at["what"], at["path"]) if at else (text, "")
    spot = _Spot(where, inspect.type_info(schema), raw)
    for name, index in re.findall(_SEGMENT, path):
        if name:
            spot.field(name)
        elif not spot.item(int(index)):
            break
    named = re.search(_NAMED_KEY, what)
    if named is not None:
        spot.enter()
        if named["how"] == "unknown":
            return key_error(spot.where, named["key"], _unknown(named["key"], spot.keys()))
        return key_error(spot.where, named["key"], "is required")
    return spot.error(what)


class _Spot:
    """A position in the schema and in the raw table at once: the table (`where`, its struct
    type, its raw value) and, once a key is chosen, that key's type and raw value."""

    def __init__(self, where: str, struct: Any, table: Any) -> None:
        self.where, self.struct, self.table = where, struct, table
        self.key: str | None = None
        self.kind: Any = None
        self.value: Any = _MISSING

    def field(self, name: str) -> None:
        self.enter()
        self.key = name
        self.kind = next((f.type for f in self.struct.fields if f.encode_name == name), None)
        self.value = self.table.get(name, _MISSING) if isinstance(self.table, Mapping) else None

    def enter(self) -> None:
        """Step into the chosen key's table, so errors name it as "[key]"."""
        struct = _struct_of(self.kind)
        if self.key is None or struct is None:
            return
        self.where, self.struct, self.table = f"{self.where} [{self.key}]", struct, self.value
        self.key, self.kind, self.value = None, None, _MISSING

    def item(self, index: int) -> bool:
        """Step into an array of tables ("[[issuers]] #2"); False for a plain list's item, whose
        problem is told as the list's."""
        from msgspec import inspect

        kind = _strip(self.kind)
        element = _struct_of(kind.item_type) if isinstance(kind, inspect.ListType) else None
        if element is None or self.key is None or not isinstance(self.value, list):
            return False
        self.where = f"{self.where} [[{self.key}]] #{index + 1}"
        self.struct, self.table = element, self.value[index]
        self.key, self.kind, self.value = None, None, _MISSING
        return True

    def keys(self) -> list[str]:
        return [f.encode_name for f in self.struct.fields]

    def error(self, fallback: str) -> ConfigError:
        if self.key is None:
            return ConfigError(f"{self.where}: must be a table")
        if _is_table(self.kind) and _expect(self.kind) is None:
            return ConfigError(f"{self.where} [{self.key}]: must be a table")
        return key_error(self.where, self.key, _problem(self.kind, self.value) or fallback)


def _unknown(key: str, known: list[str]) -> str:
    """Refuse unknown keys: a typo must not silently fall back to a default."""
    import difflib  # only for errors

    hint = difflib.get_close_matches(key, known, n=1)
    extra = f" (did you mean {hint[0]!r}?)" if hint else f"; known keys: {', '.join(known)}"
    return f"unknown key{extra}"


def _problem(kind: Any, value: Any) -> str | None:
    """What is wrong with `value` for a field of type `kind`, or None if we cannot tell."""
    if value is _MISSING:
        return "is required"
    expect = _expect(kind)
    if expect is not None:
        return f"must be {expect}"
    kind = _strip(kind)
    noun, accepted = _noun(kind)
    if noun is None:
        return None
    if isinstance(value, bool) and accepted is not bool:
        return f"must be {noun}, not a boolean"
    if not isinstance(value, accepted):
        return f"must be {noun}, not {type(value).__name__} {value!r}"
    if isinstance(value, str) and not value.strip():
        return "must not be empty"
    return _bad_choice(kind, value) or _out_of_bounds(kind, value)


def _noun(kind: Any) -> tuple[str | None, type | tuple[type, ...]]:
    """How errors name a field's type, and the Python types TOML gives for it."""
    from msgspec import inspect

    if isinstance(kind, inspect.StrType | inspect.EnumType | inspect.LiteralType):
        return "a string", str
    if isinstance(kind, inspect.CustomType) and kind.cls is Secret:
        return "a string", str
    if isinstance(kind, inspect.BoolType):
        return "true or false", bool
    if isinstance(kind, inspect.IntType):
        return "an integer", int
    if isinstance(kind, inspect.FloatType):
        return "a number", (int, float)
    return None, object


def _bad_choice(kind: Any, value: Any) -> str | None:
    from msgspec import inspect

    if isinstance(kind, inspect.EnumType):
        listed = ", ".join(repr(member.value) for member in kind.cls)
        return f"must be one of {listed}, not {value!r}"
    return None


def _out_of_bounds(kind: Any, value: Any) -> str | None:
    low, high = getattr(kind, "ge", None), getattr(kind, "le", None)
    if low is None:
        return None
    if high is not None:
        return f"must be between {low} and {high}, not {value}"
    return f"must be >= {low}, not {value}"


def _strip(kind: Any) -> Any:
    """The type itself, without its metadata and without the `| None` of an optional key."""
    from msgspec import inspect

    if isinstance(kind, inspect.Metadata):
        return _strip(kind.type)
    if isinstance(kind, inspect.UnionType):
        rest = [t for t in kind.types if not isinstance(t, inspect.NoneType)]
        if len(rest) == 1:
            return _strip(rest[0])
    return kind


def _expect(kind: Any) -> str | None:
    from msgspec import inspect

    if isinstance(kind, inspect.Metadata) and kind.extra:
        return str(kind.extra.get("expect")) if "expect" in kind.extra else None
    if isinstance(kind, inspect.UnionType):
        return next(filter(None, (_expect(t) for t in kind.types)), None)
    return None


def _is_table(kind: Any) -> bool:
    from msgspec import inspect

    return isinstance(_strip(kind), inspect.StructType | inspect.DictType)


def _struct_of(kind: Any) -> Any:
    """The table type of a field: its own, or the one table of a union such as
    `str | Table` (a path, or a table saying more)."""
    from msgspec import inspect

    kind = _strip(kind)
    if isinstance(kind, inspect.UnionType):
        tables = [t for t in map(_strip, kind.types) if isinstance(t, inspect.StructType)]
        return tables[0] if len(tables) == 1 else None
    return kind if isinstance(kind, inspect.StructType) else None
