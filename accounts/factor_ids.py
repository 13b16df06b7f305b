"""Second-factor persistent ids (``app_label.model/pk``), as the portal and forms send them.

django-otp's ``Device.from_persistent_id`` raises ``AttributeError`` when the label
names a model that is not a device (``accounts.user/3``): the lookup returns None and
then ``.first()`` is called on it. Every id from a request is checked here first, so
such an id is simply "no such factor" (404), never a 500.
"""

from __future__ import annotations

from django.apps import apps
from django_otp.models import Device


def persistent_id_names_a_device(persistent_id: str) -> bool:
    """Whether ``persistent_id`` is ``<app_label>.<model>/<digits>`` of a device model."""
    label, _, pk = persistent_id.rpartition("/")
    app_label, _, model_name = label.partition(".")
    if not (app_label and model_name and pk.isdigit()):
        return False
    try:
        model = apps.get_model(app_label, model_name)
    except LookupError:
        return False
    return issubclass(model, Device)
