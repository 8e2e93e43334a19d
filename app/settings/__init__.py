"""The declaration of every setting of the stack, one model per concern.

Each field says what it is: its type and default, what it means (`doc`), whether
it is a secret (its type is SecretStr), whether production needs it set, and its
group (the model that declares it). `app/config.py` reads the app's groups from
one `.env`; `.env.example`, docs/settings.md, the deploy workflow's `.env`, the
swarm's Docker secrets and the defaults written into compose and the scripts are
derived from here or checked against it (scripts/settings.py,
tests/config/test_settings_declaration.py).
"""
