# wandb-lens over streamable HTTP for a team: `docker build -t wandb-lens .`, then
#   docker run -e WANDB_LENS_TOKEN=... -p 8765:8765 -v "$PWD/wandb:/runs:ro" wandb-lens
# It refuses to start without WANDB_LENS_TOKEN (it binds 0.0.0.0); clients send the token as the
# X-Wandb-Lens-Token header. Extra arguments replace the CMD, e.g. `--runs-dir /runs --allow-host lens.example.com`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WANDB_SILENT=true

RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin lens

WORKDIR /opt/wandb-lens
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
# the package and its runtime dependencies only (no test extras), no pip cache in the layer
RUN pip install --no-cache-dir .

USER 10001
WORKDIR /home/lens
ENV WANDB_LENS_CACHE_DIR=/home/lens/.cache/wandb-lens
VOLUME ["/runs"]
EXPOSE 8765

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8765/healthz', timeout=4).status != 200)"]

ENTRYPOINT ["wandb-lens", "serve", "--transport", "http", "--host", "0.0.0.0", "--port", "8765"]
CMD ["--runs-dir", "/runs"]
