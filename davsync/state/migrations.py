"""Schema versions of the state store. Append only: never edit a released step.

`PRAGMA user_version` holds the number of steps applied.
"""

from __future__ import annotations

STEPS: tuple[str, ...] = (
    # 1: collections, items (with the last synced content for later field-by-field merges),
    #    and hrefs whose server changes still have to be looked at (pending).
    """
    CREATE TABLE collections (
        name        TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        url         TEXT,
        ctag        TEXT,
        sync_token  TEXT,
        last_sync   TEXT,
        last_result TEXT
    );
    CREATE TABLE items (
        collection  TEXT NOT NULL,
        uid         TEXT NOT NULL,
        filename    TEXT,
        device_sig  TEXT,
        href        TEXT,
        etag        TEXT,
        hash        TEXT NOT NULL,
        content     BLOB,
        PRIMARY KEY (collection, uid)
    );
    CREATE INDEX items_by_href ON items (collection, href);
    CREATE INDEX items_by_file ON items (collection, filename);
    CREATE TABLE pending (
        collection  TEXT NOT NULL,
        href        TEXT NOT NULL,
        PRIMARY KEY (collection, href)
    );
    """,
    # 2: device items the server refused (HTTP 400, 413, ...), by content hash: not sent again
    #    until their content changes.
    """
    CREATE TABLE refused (
        collection  TEXT NOT NULL,
        uid         TEXT NOT NULL,
        hash        TEXT NOT NULL,
        reason      TEXT NOT NULL,
        PRIMARY KEY (collection, uid)
    );
    """,
    # 3: collections synced with `collections = "all"` or a list: the device folder each is
    #    paired with (so names stay stable and a vanished one is recognised), and the display
    #    name and colour as last synced (whichever side changes later wins).
    """
    CREATE TABLE collection_meta (
        collection  TEXT PRIMARY KEY,
        folder      TEXT NOT NULL,
        displayname TEXT,
        color       TEXT
    );
    """,
    # 4: items.content holds small texts as they are (TEXT) beside zlib BLOBs. No table
    #    changes: the version makes an older davsync, which reads every content as zlib
    #    data, refuse this state with "newer than this davsync; upgrade" instead of failing
    #    on the first merge.
    "SELECT 1",
    # 5: the items' indexes by href and by file name go: nothing ever looked an item up by
    #    either (each run reads a collection's items whole), and each was one more B-tree to
    #    update per record: recording 10 000 items took 0.11-0.15 s with them, 0.07-0.09 s
    #    without, in a state a third smaller.
    """
    DROP INDEX IF EXISTS items_by_href;
    DROP INDEX IF EXISTS items_by_file;
    """,
    # 6: a collection's getlastmodified mark (where it is the change marker, `dav.probe`)
    #    and when it was stored (seconds since the epoch): trusted alone for an hour.
    """
    ALTER TABLE collections ADD COLUMN modified TEXT;
    ALTER TABLE collections ADD COLUMN modified_at REAL;
    """,
)
