"""Settings of the file vault benchmark's server: the product's, plus a baseline view.

``python -m benchmarks.file_vault`` starts uvicorn with these; nothing else uses them.
"""

from safechat.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.file_vault_urls"
