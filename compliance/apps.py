from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Retention and legal holds"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from compliance.selectors import HOLD_RULES
        from rooms.holds import hold_rules_register

        # The rooms' epoch services ask whether a hold covers an epoch through this
        # registry (rooms never imports compliance).
        hold_rules_register(HOLD_RULES)
