"""Scheme adapters: pure codecs between each home scheme's messages and the canonical model.

Start at `adapters.registry.get_adapter(scheme_id)`; the face every adapter shows is in
`adapters.base`. No module here does I/O or reads a clock. docs/schemes/ describes the
messages and the field mapping tables.
"""
