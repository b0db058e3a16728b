"""Mainland IBPS: CNAPS2-style ibps.101 (credit transfer) and ibps.102 (receipt).

The adapter lives in `adapters.cn_ibps.adapter`.
"""
