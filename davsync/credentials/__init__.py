"""Credentials: the Secret type, secure storage, and assertion -> device credential provisioning."""
