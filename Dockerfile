# The ingest worker: `docker build -t ingest-worker .`, then `docker run ingest-worker run`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    INGEST_DATA_DIR=/var/lib/ingest-worker

# LightGBM (the text-dump line model) needs the OpenMP runtime.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker ./worker
# worker/schemas links to the contract files in schemas/
COPY schemas ./schemas
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /var/lib/ingest-worker --create-home ingest

USER 10001
WORKDIR /var/lib/ingest-worker
# INGEST_METRICS_PORT: /metrics, /healthz, /readyz
EXPOSE 9464
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=4 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('INGEST_METRICS_PORT', '9464'), timeout=2)"

ENTRYPOINT ["ingest-worker"]
CMD ["run"]
