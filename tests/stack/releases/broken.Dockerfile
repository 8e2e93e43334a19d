# A broken release for tests/stack/test_15_zero_downtime_deploy.py: the app
# image it is built on, with a command that never serves. BREAK=exit: it exits
# at start; BREAK=unready: gunicorn runs but its database address refuses every
# connection, so /api/health/ready (Docker's healthcheck) never passes. The
# migrate service runs its own command from this image and still succeeds.
ARG RELEASE_BASE
FROM ${RELEASE_BASE}
ARG BREAK=exit
ENV BREAK=${BREAK}
CMD ["sh", "-c", "if [ \"$BREAK\" = exit ]; then echo 'broken release: exits at start' >&2; exit 3; fi; POSTGRES_URL=127.0.0.1:1 exec gunicorn app.main:app"]
