"""The composition root: the only code that reads the configuration and builds adapters,
and the operating pieces of a running process (systemd notification, logging set-up)."""
