# One image for every process of Sparring; the command picks which:
#   app (default):  python -m sparring serve ...
#   worker:         python -m jobs.worker --workers 4
#   ingester:       python -m jobs.ingest          (next to the database, for remote workers)
# Build: docker build -t sparring .   Run everything: docker compose up

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# Runtime dependencies only (no test packages); wheels, so no compiler in either stage.
RUN /opt/venv/bin/pip install --only-binary=:all: -r /tmp/requirements.txt

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    SPARRING_DATA_DIR=/data
RUN useradd --create-home --uid 10001 sparring && mkdir -p /data && chown sparring:sparring /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=sparring:sparring sparring ./sparring
COPY --chown=sparring:sparring jobs ./jobs
COPY --chown=sparring:sparring ui ./ui
COPY --chown=sparring:sparring streamlit_app.py ./
COPY --chown=sparring:sparring .streamlit ./.streamlit
COPY --chown=sparring:sparring data/goals.json data/agents.json ./data/
COPY --chown=sparring:sparring docs/data.md ./docs/
USER sparring
VOLUME ["/data"]
EXPOSE 8501
# The app's health endpoint; workers override this check (see compose.yaml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=40s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["python", "-m", "sparring", "serve", "--port", "8501", "--address", "0.0.0.0"]
