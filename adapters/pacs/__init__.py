"""The ISO 20022 codec shared by hk-fps and mo-fps: pacs.008.001.08 in and out, pacs.002.001.10.

One mapping table (`adapters.pacs.mapping`) with per-scheme overrides in a `PacsProfile`; never
two copies of the codec.
"""
