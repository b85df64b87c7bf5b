"""The composition root: the only code that reads the configuration and builds the adapters
(state store, DAV client, authenticator, device sources) for a sync or a backup."""
