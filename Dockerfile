# The gateway image (the Triton pods use NVIDIA's tritonserver image; see infra/). It holds only what runs in
# production: the packages of requirements/runtime.lock (hash-checked; no test, infra or dev dependency) and the
# shipped code (.dockerignore keeps the stand-ins, tests, dev tools, bench and the Pulumi program out of the build
# context). tests/test_image.py checks both, and runs the gateway from a venv built from that lock alone.
# Build: docker build -t modelsvc-gateway:0.1.0 .
FROM python:3.11-slim
WORKDIR /app
COPY requirements/runtime.lock requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY modelsvc/ modelsvc/
COPY gateway/ gateway/
COPY infra/ infra/
# --no-build-isolation: built with the setuptools the lock pinned and hashed, nothing fetched unchecked
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && useradd --uid 10001 gateway \
    && mkdir -p /var/lib/modelsvc/usage && chown 10001 /var/lib/modelsvc/usage
USER 10001
# Usage records: infra mounts a volume here (the spool in front of PostgreSQL, or the local log without one).
ENV MODELSVC_HOST=0.0.0.0 MODELSVC_PORT=8000 MODELSVC_DISCOVERY=dns \
    MODELSVC_USAGE_LOG=/var/lib/modelsvc/usage/usage.jsonl MODELSVC_USAGE_SPOOL=/var/lib/modelsvc/usage/spool
EXPOSE 8000
CMD ["modelsvc", "serve"]
