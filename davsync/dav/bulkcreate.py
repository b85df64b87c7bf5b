"""Creating a new collection together with all its items, where the quirks table says the
server takes it (Radicale): one PUT of the whole collection instead of one PUT per item, then
one listing to learn where each item landed (`bulkmap.py`), and the fallbacks: UIDs whose file
name the server's OS would refuse go one by one, and items whose place cannot be predicted are
found by reading their UIDs back.

`Collection.can_bulk_create` / `bulk_create` (the `DavCollection` contract) call these; every
request goes through the collection's `DavClient`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from davsync.core.kinds import MEDIA_TYPE
from davsync.dav import xmlbodies as xb
from davsync.dav.api import Created, DavError, PreconditionFailed
from davsync.dav.bulkbody import calendar_body, vcard_body
from davsync.dav.bulkmap import map_bulk, read_uid
from davsync.dav.hrefs import radicale_bulk_fits, suffix_for
from davsync.dav.quirks import rating

if TYPE_CHECKING:
    from davsync.dav.client import DavClient
    from davsync.dav.collection import Collection


def can_bulk_create(client: DavClient, collection: Collection) -> bool:
    return (
        rating(client.server, "bulk_put_new_collection") == "supported"
        and not collection.exists
    )


def bulk_create(
    client: DavClient, collection: Collection, items: Sequence[tuple[str, bytes]]
) -> dict[str, Created]:
    """One PUT of every item to the new collection URL, then one listing to learn where
    each landed. UIDs whose file name the server's OS would refuse go one by one."""
    if collection.exists:
        raise DavError(f"{collection.url}: bulk create refused, the collection already exists")
    repeated = [uid for uid, n in Counter(uid for uid, _ in items).items() if n > 1]
    if repeated:
        raise DavError(
            f"{collection.url}: bulk create needs unique UIDs; {repeated[0]!r} repeats"
        )
    suffix = suffix_for(collection.kind)
    bulk = [(uid, data) for uid, data in items if radicale_bulk_fits(uid, suffix)]
    alone = [(uid, data) for uid, data in items if not radicale_bulk_fits(uid, suffix)]
    if not bulk:
        collection.ensure_exists()
        return {uid: Created(collection.href_for(uid),
                             collection.create(collection.href_for(uid), data))
                for uid, data in alone}
    _put_collection(client, collection, bulk)
    single_hrefs = {uid: collection.href_for(uid) for uid, _ in alone}
    for uid, data in alone:
        collection.create(single_hrefs[uid], data)
    listing = collection.sync(None).changed
    mapping = map_bulk(
        [uid for uid, _ in bulk], suffix, collection.path, listing,
        server_sorts=collection.kind == "calendars",
    )
    created = dict(mapping.created)
    created.update({uid: Created(href, listing.get(href)) for uid, href in
                    single_hrefs.items()})
    if mapping.unmatched_uids:
        created.update(
            _read_uids(collection, mapping.unmatched_hrefs, set(mapping.unmatched_uids))
        )
    return created


def _put_collection(
    client: DavClient, collection: Collection, bulk: Sequence[tuple[str, bytes]]
) -> None:
    if collection.kind == "contacts":
        body = vcard_body(bulk)
    else:
        body = calendar_body(bulk, collection.displayname)
    response = client.request(
        "PUT", collection.url,
        headers={"Content-Type": MEDIA_TYPE[collection.kind], "If-None-Match": "*"},
        content=body,
    )
    if response.status_code == 412:
        raise PreconditionFailed(
            f"PUT {collection.url} refused (412): the collection appeared on the server "
            "meanwhile; run the sync again", 412,
        )
    if response.status_code // 100 != 2:
        raise client.failure("PUT (bulk create)", collection.url, response)
    collection.exists = True
    if collection.kind == "contacts" and collection.displayname:
        _set_displayname(client, collection.url, collection.displayname)


def _set_displayname(client: DavClient, url: str, displayname: str) -> None:
    response = client.request(
        "PROPPATCH", url, headers=xb.XML_CONTENT, content=xb.proppatch_displayname(displayname)
    )
    if response.status_code // 100 != 2:
        raise client.failure("PROPPATCH", url, response)


def _read_uids(
    collection: Collection, hrefs: Sequence[str], wanted: set[str]
) -> dict[str, Created]:
    """Fallback for names we could not predict: read the UIDs from the items themselves."""
    found: dict[str, Created] = {}
    for item in collection.multiget(hrefs):
        uid = None if item.data is None else read_uid(item.data)
        if uid in wanted and uid is not None:
            found[uid] = Created(item.href, item.etag)
    missing = wanted - set(found)
    if missing:
        raise DavError(
            f"{collection.url}: after the bulk upload {len(missing)} item(s) could not be "
            f"found on the server, e.g. UID {sorted(missing)[0]!r}"
        )
    return found
