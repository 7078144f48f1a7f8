# orgsync: HR → Feishu directory sync. `orgsync daemon` by default; any other command works too:
#   docker run --rm IMAGE --version
#   docker run -v orgsync-ledger:/var/lib/orgsync -v ./orgsync.yaml:/etc/orgsync/orgsync.yaml:ro \
#     -e FEISHU_APP_SECRET=... -p 8791:8791 IMAGE
#
# BASE_IMAGE is any image with Python >= 3.11 and its venv module. Where no registry is
# reachable, build on a local one (see README, "Running in production"):
#   buildah bud --build-arg BASE_IMAGE=localhost/bookworm-py ...
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    ORGSYNC_CONFIG=/etc/orgsync/orgsync.yaml \
    ORGSYNC_ADMIN_PORT=8791

COPY pyproject.toml README.md /src/
COPY orgsync /src/orgsync
COPY connectors /src/connectors

# One step, so the image has one layer of it: the venv, the app, no sources, no pip cache, no
# pip. No byte-code either: it would add ~60 MB (pygments, sqlalchemy …) to save the daemon a
# second at start.
# The optional secrets let pip reach the index from behind a TLS-inspecting proxy; they are
# mounted for this step only and leave nothing in the image.
RUN --mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt \
    --mount=type=secret,id=pipconf,target=/etc/pip.conf \
    python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-compile /src \
 && /opt/venv/bin/pip uninstall -y --disable-pip-version-check pip \
 && rm -rf /src \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/orgsync \
      --shell /usr/sbin/nologin orgsync \
 && mkdir -p /var/lib/orgsync /etc/orgsync \
 && chown orgsync:orgsync /var/lib/orgsync \
 && chmod 0700 /var/lib/orgsync

USER orgsync
WORKDIR /var/lib/orgsync
# the SQLite ledger (ledger.url: sqlite:////var/lib/orgsync/orgsync.db) lives here
VOLUME ["/var/lib/orgsync"]
EXPOSE 8791

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('ORGSYNC_ADMIN_PORT', '8791') + '/healthz', timeout=4)"]

ENTRYPOINT ["orgsync"]
CMD ["daemon"]
