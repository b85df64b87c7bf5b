"""The pure core: items, normalization, sync planning. No network, files, clock or sqlite."""
