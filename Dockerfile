# syntax=docker/dockerfile:1
# cellect-monitor image: a builder stage turns pyproject.toml + receiver/ into a wheel and
# installs it with its dependencies into /opt/venv; the runtime stage copies only that venv.
#   docker build -t cellect-monitor .
#   docker run -p 8080:8080 -v cellect-data:/data cellect-monitor run --emulator

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY receiver ./receiver
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /dist . \
 && /opt/venv/bin/pip install /dist/*.whl

FROM python:3.11-slim AS runtime
# CELLECT_HOST: listen on every interface of the container, not only its loopback (a
# published port reaches nothing else). That is acceptable only because nothing there
# is open that may change anything: everything under /api/ needs the admin token
# (CELLECT_ADMIN_TOKEN, else generated into /data: `docker exec <container>
# cellect-monitor admin token` prints it) and webhooks need their secret. /healthz,
# /readyz and /metrics only read, so the HEALTHCHECK below needs no token.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CELLECT_HOST=0.0.0.0 \
    CELLECT_PORT=8080 \
    CELLECT_DATABASE_URL=sqlite:////data/cellect-monitor.db
RUN groupadd --system --gid 10001 cellect \
 && useradd --system --uid 10001 --gid cellect --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin cellect \
 && mkdir -p /data \
 && chown cellect:cellect /data
COPY --from=builder /opt/venv /opt/venv
WORKDIR /data
VOLUME ["/data"]
USER cellect
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["cellect-monitor"]
CMD ["run"]
