# Two stages: wheels are built with the toolchain, the runtime image carries only what runs.
FROM python:3.11.10-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres]"

FROM python:3.11.10-slim-bookworm
RUN useradd --system --uid 10001 --create-home --home-dir /app healthgraph
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER healthgraph
WORKDIR /app
ENV HEALTHGRAPH_HOST=0.0.0.0 \
    HEALTHGRAPH_PORT=8000 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["healthgraph"]
CMD ["serve"]
