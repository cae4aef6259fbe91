# Production image: gunicorn as PID 1, migrations at start, non-root, no build tools.
# The base is a build argument so that the container check (scripts/container-check.sh) can build
# from a local image on machines that cannot pull from a registry.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# Behind a TLS-inspecting proxy: mount its CA bundle into the build and name it here
# (--volume /path/ca.pem:/tmp/ca.pem:ro --build-arg PIP_CERT=/tmp/ca.pem); it stays out of the image.
ARG PIP_CERT
WORKDIR /build
COPY requirements.txt .
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements.txt

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLASK_ENV=production \
    HOST=0.0.0.0 \
    PORT=5000 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics
# A numeric id, so that the host (and Kubernetes' runAsNonRoot) can tell it is not root.
RUN groupadd --gid 10001 app \
    && useradd --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY migrations ./migrations
COPY app ./app
COPY manage.py run.py gunicorn.conf.py docker-entrypoint.sh ./
RUN mkdir instance && chown app:app instance
USER 10001:10001
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '5000')}/api/v1/health/live\", timeout=2)"]
ENTRYPOINT ["./docker-entrypoint.sh"]
CMD ["gunicorn", "app:create_app()"]
