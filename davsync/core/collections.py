"""Every collection of the account: which server collection pairs with which device folder,
what a folder is called, and whose display name or colour wins. Pure: values in, a plan out.

Everything a server says is untrusted: a collection's name (the last segment of its href,
decoded) becomes a folder name only through `folder_name`, and a display name or colour
becomes a one-line metadata file only through `meta_value`.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

MAX_FOLDER_CHARS: Final = 100  # far below the 255 bytes of most file systems, even in UTF-8
MAX_META_CHARS: Final = 1000
FALLBACK_FOLDER: Final = "collection"


@dataclass(frozen=True)
class ServerCollection:
    """One addressbook or calendar the home set lists: `name` is its href's last segment,
    decoded (the name `[server] addressbook` / `calendar` and `collections = [...]` use)."""

    name: str
    href: str
    displayname: str | None = None
    color: str | None = None
    components: tuple[str, ...] = ()
    ctag: str | None = None  # its getctag as listed: this run's change probe, where given
    # Its getlastmodified as listed, where that is the change probe instead (`dav.probe`),
    # and whether it is settled (old enough to be kept as the next run's mark).
    modified: str | None = None
    settled: bool = False


@dataclass(frozen=True)
class Pair:
    """A server collection and its device folder. `href` None: create it on the server;
    `new_folder`: create the folder on the device (a collection not synced before)."""

    name: str
    folder: str
    href: str | None
    new_folder: bool = False


@dataclass(frozen=True)
class Gone:
    """A collection synced before that the server no longer has; its folder is kept."""

    name: str
    folder: str


@dataclass(frozen=True)
class CollectionPlan:
    pairs: tuple[Pair, ...]
    gone: tuple[Gone, ...]  # report each; never touch its folder
    forget: tuple[str, ...]  # gone from the server and from the device: drop the state
    missing: tuple[str, ...]  # listed names the account lacks (and `create` is off)


def _safe_char(char: str) -> str:
    if char in "/\\" or unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
        return "_"
    return char


def folder_name(name: str) -> str:
    """A device folder name for the server collection `name`: path separators and control,
    format and unassigned characters become "_", leading dots and surrounding white space
    go (no "..", no hidden folder), and a name longer than MAX_FOLDER_CHARS is cut and gets
    8 hex digits of its SHA-256, so two long names stay apart. Empty: "collection"."""
    safe = "".join(_safe_char(c) for c in unicodedata.normalize("NFC", name)).strip()
    safe = safe.lstrip(".").strip()
    if len(safe) > MAX_FOLDER_CHARS:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        safe = f"{safe[:MAX_FOLDER_CHARS - 9].rstrip()}-{digest}"
    return safe or FALLBACK_FOLDER


def assign_folders(names: Iterable[str], known: Mapping[str, str],
                   reserved: Iterable[str] = ()) -> dict[str, str]:
    """The folder of each collection name: the one it was paired with before (`known`), else
    `folder_name(name)`, with "-2", "-3", ... added when that is taken (compared without
    case, for case-insensitive file systems). New names are placed in sorted order, so the
    same account gives the same folders on every device."""
    out = {name: known[name] for name in names if name in known}
    taken = {folder.casefold() for folder in (*known.values(), *reserved)}
    for name in sorted(n for n in names if n not in out):
        base = folder = folder_name(name)
        n = 2
        while folder.casefold() in taken:
            folder, n = f"{base}-{n}", n + 1
        taken.add(folder.casefold())
        out[name] = folder
    return out


def plan_collections(
    server: Sequence[ServerCollection],
    folders: Collection[str],
    known: Mapping[str, str],
    wanted: Sequence[str] | None,
    *,
    create: bool = False,
) -> CollectionPlan:
    """Pair the server's collections with the device folders under the parent.

    `folders`: the folder names under the parent; `known`: name -> folder of every collection
    paired in an earlier run; `wanted`: the configured names, None for "all". A known name
    the server no longer lists is `gone` (or forgotten once its folder is gone too). With
    "all", a folder that is neither paired nor known becomes a new server collection of its
    own name; with a list, a listed name the account lacks is `missing`, unless `create`."""
    on_server = {c.name: c for c in server}
    names = list(on_server) if wanted is None else [n for n in wanted if n in on_server]
    placed = assign_folders(names, known)
    pairs = [Pair(n, placed[n], on_server[n].href, _is_new(placed[n], n, folders, known))
             for n in sorted(names)]
    considered = set(known) if wanted is None else set(known) & set(wanted)
    lost = sorted(n for n in considered if n not in on_server)
    gone = tuple(Gone(n, known[n]) for n in lost if known[n] in folders)
    forget = tuple(n for n in lost if known[n] not in folders)
    if wanted is None:
        pairs += _device_new(folders, set(placed.values()) | set(known.values()), on_server)
        return CollectionPlan(tuple(pairs), gone, forget, ())
    absent = [n for n in wanted if n not in on_server and n not in known]
    if create:
        fresh = assign_folders(absent, {}, reserved=[*placed.values(), *known.values()])
        pairs += [Pair(n, fresh[n], None, fresh[n] not in folders) for n in absent]
        absent = []
    return CollectionPlan(tuple(pairs), gone, forget, tuple(absent))


def _is_new(folder: str, name: str, folders: Collection[str], known: Mapping[str, str]) -> bool:
    """Whether to create the device folder: only for a collection not synced before. The
    folder of one that was is missing on purpose or by accident: the engine reports it."""
    return folder not in folders and name not in known


def _device_new(folders: Collection[str], used: set[str],
                on_server: Mapping[str, ServerCollection]) -> list[Pair]:
    used_folded = {f.casefold() for f in used}
    return [Pair(f, f, None) for f in sorted(folders)
            if f.casefold() not in used_folded and f not in on_server and folder_name(f) == f]


def meta_value(text: str | None) -> str | None:
    """A display name or colour as a vdir metadata file holds it: the first line, stripped,
    without control characters, at most MAX_META_CHARS; None when nothing is left."""
    if text is None:
        return None
    line = text.strip().split("\n", 1)[0].split("\r", 1)[0]
    clean = "".join(c for c in line if unicodedata.category(c) not in ("Cc", "Cf")).strip()
    return clean[:MAX_META_CHARS] or None


@dataclass(frozen=True)
class MetaMerge:
    """The outcome for one property: its `value`, and which side must be written."""

    value: str | None
    write_device: bool = False
    write_server: bool = False
    conflict: bool = False  # both sides changed since the last sync: the server's won


def merge_meta(device: str | None, server: str | None, synced: str | None) -> MetaMerge:
    """vdirsyncer's metasync: the side that changed since the last sync (`synced`) wins; a
    side without a value takes the other's (a missing file never blanks the server's name);
    when both changed the server's value wins and the device's is reported."""
    if device == server:
        return MetaMerge(device)
    if device is None or (server is not None and device == synced):
        return MetaMerge(server, write_device=True)
    if server is None or server == synced:
        return MetaMerge(device, write_server=True)
    return MetaMerge(server, write_device=True, conflict=synced is not None)
