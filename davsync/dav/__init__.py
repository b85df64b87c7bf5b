"""WebDAV, CardDAV and CalDAV over httpx: one layer serving both protocols."""
