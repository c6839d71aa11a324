# syntax=docker/dockerfile:1
# DL-SMS: one async process per container; run two or more behind nginx (docker-compose.yml).

# --- build: a virtual environment with the app and its pinned dependencies -------------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
# Dependencies first, so that a code change does not reinstall them.
COPY pyproject.toml setup.py README.md ./
RUN mkdir -p app alembic/versions && touch app/__init__.py \
    && /opt/venv/bin/pip install . \
    && /opt/venv/bin/pip uninstall -y dlsms \
    && rm -rf build ./*.egg-info
COPY alembic ./alembic
COPY app ./app
# A plain (not editable) install: the package, its migrations inside it (app/migrations),
# all in /opt/venv; the image that runs needs nothing from /src.
RUN /opt/venv/bin/pip install --no-deps . \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# --- runtime: no compilers, no pip cache, not root -----------------------------------
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 DLSMS_ENV=production LOG_FORMAT=json
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin dlsms
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
USER dlsms
EXPOSE 8000
# /health answers 200 while the process runs (/ready adds PostgreSQL).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
# `dlsms serve` applies migrations first (under an advisory lock: replicas starting
# together migrate once), then serves; SIGTERM drains requests and tells streams to go.
ENTRYPOINT ["dlsms"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
