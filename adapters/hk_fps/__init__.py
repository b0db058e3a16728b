"""Hong Kong FPS: ISO 20022 pacs.008.001.08 / pacs.002.001.10 (the shared `adapters.pacs` codec).

Kept free of imports so that `adapters.hk_fps.identifiers` can be loaded on its own; the
adapter lives in `adapters.hk_fps.adapter`.
"""
