# SafeChat's image: one image for web, worker and beat (docs/operations.md, "Containers").
# Build stage: the locked requirements (hashes required) into a virtual environment,
# with whatever a wheel-less package would need to build. Final stage: that environment
# and the code, no compiler, no pip cache, running as an unprivileged user on a
# read-only root filesystem (the compose file sets read_only).

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
COPY requirements/base.txt /tmp/requirements.txt
RUN python -m venv /opt/safechat/.venv \
    && /opt/safechat/.venv/bin/pip install --require-hashes --no-deps -r /tmp/requirements.txt

FROM python:3.11-slim-bookworm
# xmlsec1: SAML sign-in checks XML signatures with it (docs/sso.md).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends xmlsec1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 safechat \
    && useradd --system --uid 10001 --gid safechat --home-dir /var/lib/safechat \
       --no-create-home --shell /usr/sbin/nologin safechat \
    && install -d -o safechat -g safechat -m 0700 /var/lib/safechat
COPY --from=build /opt/safechat/.venv /opt/safechat/.venv
WORKDIR /opt/safechat
COPY manage.py pyproject.toml ./
COPY safechat ./safechat
COPY accounts ./accounts
COPY rooms ./rooms
COPY files ./files
COPY compliance ./compliance
COPY audit ./audit
COPY templates ./templates
COPY static ./static
ENV PATH=/opt/safechat/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=safechat.settings \
    SAFECHAT_DATA_DIR=/var/lib/safechat \
    SAFECHAT_SERVICE=web
# Static files are collected into the image: the root filesystem is read-only at run time.
RUN SAFECHAT_DATA_DIR=/tmp/build-data python manage.py collectstatic --noinput \
    && rm -rf /tmp/build-data
USER 10001:10001
EXPOSE 8000
# The web server; the compose file runs the worker and beat from the same image.
CMD ["uvicorn", "safechat.asgi:application", "--host", "0.0.0.0", "--port", "8000", \
     "--no-server-header", "--proxy-headers", "--loop", "asyncio", \
     "--ws-per-message-deflate", "false", "--ws-max-size", "65536"]
