# flagd server image: `docker build -t flagd .` then `docker run -p 8000:8000 -v flagd-data:/data flagd`
# (embedded mode on /data/flagd.db), or set FLAGD_DATABASE_URL + FLAGD_REDIS_URL (see compose.yaml).
FROM python:3.11-slim AS build
# A C compiler for the build stage only: the wheel carries the mypyc-compiled evaluator (setup.py).
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md requirements.lock ./
COPY evaluator ./evaluator
COPY store ./store
COPY flagd ./flagd
# The locked versions (requirements.lock, `make lock`), so an image built later ships what was tested.
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c requirements.lock .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLAGD_DATA_PATH=/data/flagd.db \
    FLAGD_LOG_FORMAT=json
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && python -c "import evaluator, sys; sys.exit(not evaluator.COMPILED)" \
    && useradd --system --uid 10001 --user-group --home-dir /data --create-home flagd
USER flagd
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('FLAGD_PORT', '8000'), timeout=2)"]
CMD ["flagd", "serve", "--host", "0.0.0.0"]
