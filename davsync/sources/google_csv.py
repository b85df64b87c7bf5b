"""A Google Contacts CSV export (current or older header spelling), over
`core.convert.google_csv`. Rows without a UID column get stable derived UIDs; a contact whose
UID would not be derived again (one made on the server, a renamed one) keeps it in a UID
column."""

from __future__ import annotations

from typing import Any

from davsync.core.convert import google_csv
from davsync.sources.onefile import Entry, OneFileSource


class GoogleCsvSource(OneFileSource):
    """A row that cannot be converted is kept as it was read, in its place."""

    what = "contacts export (Google CSV)"

    def split(self, data: bytes) -> tuple[list[Entry], Any]:
        return list(google_csv.csv_records(data)), None

    def join(self, entries: list[Entry], rest: Any) -> bytes:
        return google_csv.vcards_to_csv(entries).encode("utf-8")
