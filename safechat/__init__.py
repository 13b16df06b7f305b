"""SafeChat: encrypted, audited chat rooms for regulated institutions.

Importing the package loads nothing: ``safechat.crypto`` must stay importable without
Django or Celery. The Celery app (``safechat.celery``) is loaded by the project's app
config (``safechat.apps``) when Django starts, and by ``celery -A safechat.celery``.
"""
