"""`make up` with a `.env` password the database volume was not created with: it
fails at once and says what to do, instead of waiting a minute and blaming the
database for not answering."""

import time

from tests.stack.conftest import Stack, env_file_text, run, timed

# Before: prestart waited its whole 60 s for a database that refused every login.
FAIL_FAST_SECONDS = 45


def test_a_password_the_volume_does_not_know_fails_at_once_saying_why(stack: Stack) -> None:
    started = time.monotonic()
    settings = {**stack.settings, "POSTGRES_PW": "not the password the volume was made with"}
    stack.env_file.write_text(env_file_text(settings))
    up = run(["scripts/stack.sh", "up"], env=stack.env, check=False, timeout=300)
    elapsed = time.monotonic() - started
    output = up.stdout + up.stderr
    assert up.returncode != 0, output[-3000:]
    assert 'password authentication failed for user "app"' in output, output[-3000:]
    # The last word is the advice, not only the symptom.
    last_line = output.strip().splitlines()[-1]
    assert "migrations did not run" in last_line, last_line
    assert "Rotating secrets" in last_line, last_line
    assert elapsed < FAIL_FAST_SECONDS, elapsed
    # (The next module redeploys the session's settings: configured_stack.)
    timed("make up with a wrong database password: fails fast", started)
