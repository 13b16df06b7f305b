"""A real OpenID Connect provider for the sign-in tests: django-oauth-toolkit in a small
Django project of its own, run as a separate server process (``tests.support.oidc``).

Its ``/control/`` routes let a test register a client, create a person, sign them in at
the provider and choose how the provider misbehaves for the next ID tokens (a claim
changed, the token unsigned or signed the wrong way), so each refusal on SafeChat's side
is tested against tokens a real provider issued.
"""
