"""Small shared helpers: logging, atomic file output, provenance."""
