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

        from compliance.services.supervision import supervision_match_posted
        from rooms.supervision import posted_inspector_register

        # The message services have a written text matched for supervision in their
        # transaction through this registry (rooms never imports compliance).
        posted_inspector_register(
            lambda message, text: supervision_match_posted(message=message, text=text)
        )
