# The bpstudy image: the CLI, MLflow (server and client), psycopg for PostgreSQL and
# optuna-dashboard. docker-compose.yml runs it as the mlflow, worker and dashboard services.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/bpstudy
COPY pyproject.toml README.md ./
COPY bpstudy ./bpstudy
COPY conf ./conf
COPY sweeps ./sweeps
RUN pip install '.[postgres,dashboard]'

# an unprivileged user; /work is where runs write their outputs, /mlartifacts the
# MLflow server's artifact store (both named volumes in docker-compose.yml)
RUN useradd --create-home --uid 1000 bpstudy \
 && mkdir -p /work /mlartifacts \
 && chown bpstudy:bpstudy /work /mlartifacts
USER bpstudy
WORKDIR /work
ENTRYPOINT []
CMD ["bpstudy", "--help"]
