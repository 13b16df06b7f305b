"""Benchmark-only: a plain Django upload and download, the vault's baseline.

Mounted by ``benchmarks.file_vault_settings`` alone, never by the product's URLs.
"""
