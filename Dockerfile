# syntax=docker/dockerfile:1
# maxscale-ha: one image for the exporter and the remediator.
#   docker build -t maxscale-ha .     (podman: podman build --format docker, which keeps the health check)
#   docker run --network host -v /etc/mxha:/etc/mxha:ro ... maxscale-ha exporter --config.file /etc/mxha/node.yml
#   docker run -p 9844:9844 -e MXHA_HEALTH_PORT=9844 -v /etc/mxha:/etc/mxha:ro maxscale-ha remediator ...
# See docs/container.md for the exporter's mounts and capabilities.

# Any Debian-like image with python3 (3.11 or later) and its venv module: the official slim image
# by default; tests/test_image.py passes one it builds from Debian packages (no registry there).
ARG BASE_IMAGE=python:3.11.7-slim-bookworm

# Production runs the exporter and the remediator: the lab (network-namespace harness, scenarios,
# MaxScale emulator) is neither copied nor packaged (scripts/production_pyproject.py drops it).
FROM ${BASE_IMAGE} AS build
# A CA bundle for pip, where PyPI is reached through a TLS-inspecting proxy (mount it with the build).
ARG PIP_CERT=""
WORKDIR /src
# Wheels for what pyproject.toml declares (the build backend and the runtime dependencies), pinned
# by constraints.txt: read from the package's metadata, so no list here can miss one. This layer
# is reused until one of the two files changes; the package's own wheel below then builds offline.
COPY pyproject.toml constraints.txt ./
RUN python3 -m venv /opt/build \
 && python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); \
print('\n'.join(p['build-system']['requires'] + p['project']['dependencies']))" > requirements.txt \
 && PIP_CONSTRAINT=/src/constraints.txt /opt/build/bin/pip wheel --no-cache-dir --wheel-dir /wheels \
        -r requirements.txt
COPY README.md ./
COPY scripts/production_pyproject.py ./scripts/
COPY mxha ./mxha
COPY exporter ./exporter
COPY remediator ./remediator
COPY alerts ./alerts
COPY dashboards ./dashboards
# The package without the lab, installed into its own venv from /wheels only: a dependency that
# the metadata names and no wheel provides stops the build here.
RUN python3 scripts/production_pyproject.py pyproject.toml \
 && /opt/build/bin/pip wheel --no-cache-dir --no-index --find-links /wheels --no-deps --wheel-dir /wheels . \
 && python3 -m venv --without-pip /opt/mxha \
 && /opt/build/bin/pip --python /opt/mxha/bin/python install --no-cache-dir --no-index --find-links /wheels \
        /wheels/maxscale_ha-*.whl

FROM ${BASE_IMAGE}
# /var/lib/mxha-remediator is where the example config keeps the remediator's audit log: writable by
# the user, so they work unchanged; mount a volume there to keep it across containers.
RUN groupadd --gid 10001 mxha \
 && useradd --uid 10001 --gid mxha --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mxha \
 && install -d -o mxha -g mxha -m 0750 /var/lib/mxha-remediator
# The venv only: no pip, no wheels, no sources (the same base, so its python3 link holds).
COPY --from=build /opt/mxha /opt/mxha
ENV PATH=/opt/mxha/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 9843 9844
# No curl in the image: the health check uses Python. MXHA_HEALTH_PORT is 9843 for the
# exporter; set it to 9844 for the remediator.
ENV MXHA_HEALTH_PORT=9843
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['MXHA_HEALTH_PORT'], timeout=4)"]
ENTRYPOINT ["mxha"]
CMD ["exporter", "--config.file", "/etc/mxha/node.yml"]
