"""Macau FPS: ISO 20022 pacs.008.001.08 / pacs.002.001.10 with Macau clearing codes (assumed).

The adapter lives in `adapters.mo_fps.adapter`.
"""
