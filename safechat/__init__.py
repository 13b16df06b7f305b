"""SafeChat: encrypted, audited chat rooms for regulated institutions."""

from safechat.celery import app as celery_app

__all__ = ["celery_app"]
