# The API image: gunicorn managing uvicorn workers, as a non-root user.
# Build:  docker compose build app    (or: docker build -t fastapi-stack-app .)
# The base is pinned by tag; for fully reproducible builds pin it by digest too
# (PYTHON_IMAGE=python:3.13-slim-trixie@sha256:...).
ARG PYTHON_IMAGE=python:3.13-slim-trixie

# --- build: resolve and install the pinned dependencies into a venv ----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir --requirement /tmp/requirements.txt

# --- runtime: the venv, the code, nothing else --------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A fixed uid/gid so volume permissions and `docker exec -u` are predictable.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /srv \
        --no-create-home --shell /usr/sbin/nologin app
WORKDIR /srv
COPY --from=build /opt/venv /opt/venv
# Code stays owned by root: the app user can read it but not change it.
COPY alembic.ini gunicorn.conf.py ./
COPY migrations ./migrations
COPY app ./app
RUN python -m compileall -q app migrations
# The source revision the image was built from (scripts/stack.py passes git's
# commit): `docker inspect` then tells which release a container runs. Last, so
# a new revision reuses every layer above.
ARG APP_REVISION=unknown
LABEL org.opencontainers.image.revision=${APP_REVISION}
# Numeric, so Kubernetes' runAsNonRoot and `docker run --user` checks can verify it.
USER 10001:10001
EXPOSE 8000
# gunicorn reads ./gunicorn.conf.py (workers, UvicornWorker, timeouts, proxy trust).
# Migrations are not run here: compose runs `python -m app.prestart` once, in the
# one-shot `migrate` service, before any app container (and so any worker) starts.
CMD ["gunicorn", "app.main:app"]
