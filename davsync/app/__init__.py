"""The composition root: the only code that reads the configuration and builds adapters."""
