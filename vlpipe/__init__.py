"""vlpipe: a reproducible video-language research pipeline (decode → features → models → tables)."""

__version__ = "0.1.0"
