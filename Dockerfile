# syntax=docker/dockerfile:1
# maxscale-ha: one image for the exporter and the remediator.
#   docker run --network host -v /etc/mxha:/etc/mxha:ro ... maxscale-ha exporter --config.file /etc/mxha/node.yml
#   docker run -p 9844:9844 -v /etc/mxha:/etc/mxha:ro maxscale-ha remediator --config.file /etc/mxha/remediator.yml
# See README "Running in a container" for the mounts and capabilities the exporter needs.

# Production runs the exporter and the remediator: the lab (network-namespace harness, scenarios,
# MaxScale emulator) is neither copied nor packaged (scripts/production_pyproject.py drops it).
FROM python:3.11.7-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY scripts/production_pyproject.py ./scripts/
COPY mxha ./mxha
COPY exporter ./exporter
COPY remediator ./remediator
COPY alerts ./alerts
COPY dashboards ./dashboards
RUN python scripts/production_pyproject.py pyproject.toml \
 && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
 && pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt \
        prometheus-client requests flask pyyaml waitress

FROM python:3.11.7-slim-bookworm
RUN groupadd --system --gid 10001 mxha \
 && useradd --system --uid 10001 --gid mxha --no-create-home --shell /usr/sbin/nologin mxha
COPY --from=build /wheels /wheels
RUN python -m venv /opt/mxha \
 && /opt/mxha/bin/pip install --no-cache-dir --no-index /wheels/*.whl \
 && rm -rf /wheels
ENV PATH=/opt/mxha/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 9843 9844
# No curl in the slim image: the health check uses Python. MXHA_HEALTH_PORT is 9843 for the
# exporter; set it to 9844 for the remediator.
ENV MXHA_HEALTH_PORT=9843
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['MXHA_HEALTH_PORT'], timeout=4)"]
ENTRYPOINT ["mxha"]
CMD ["exporter", "--config.file", "/etc/mxha/node.yml"]
