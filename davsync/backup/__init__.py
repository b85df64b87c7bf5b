"""Encrypted backup of media, documents, contacts and calendars to S3, and restore."""
