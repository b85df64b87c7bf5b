"""davsync: contact/calendar sync over CardDAV/CalDAV and encrypted backup to S3."""

__version__ = "0.1.0"
