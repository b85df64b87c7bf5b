"""Device stores (vdir folders; later JSON/CSV exports, Evolution) behind one Source protocol."""
