"""Baselines for ``benchmarks.ws_load``: chat without SafeChat's guarantees.

``PlainChatConsumer`` is the Channels-tutorial chat (no authentication checks, no
persistence, no encryption: the text itself crosses the channel layer).
``PersistedChatConsumer`` is the same chat storing every message as a plaintext row.

This app is never installed in the product: its table is created by the benchmark,
in the benchmark's own scratch database only (``schema_editor.create_model``).
"""
