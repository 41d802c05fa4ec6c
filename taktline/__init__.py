"""taktline: trusted production counts from the line to the people."""

__version__ = "0.1.0"
