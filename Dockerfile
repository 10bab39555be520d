# The gateway image (the Triton pods use NVIDIA's tritonserver image; see infra/).
# Build: docker build -t modelsvc-gateway:0.1.0 .
FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY modelsvc/ modelsvc/
COPY gateway/ gateway/
COPY infra/ infra/
RUN pip install --no-cache-dir --no-deps . && useradd --uid 10001 gateway \
    && mkdir -p /var/lib/modelsvc/usage && chown 10001 /var/lib/modelsvc/usage
USER 10001
# Usage records: infra mounts a volume here (the spool in front of PostgreSQL, or the local log without one).
ENV MODELSVC_HOST=0.0.0.0 MODELSVC_PORT=8000 MODELSVC_DISCOVERY=dns \
    MODELSVC_USAGE_LOG=/var/lib/modelsvc/usage/usage.jsonl MODELSVC_USAGE_SPOOL=/var/lib/modelsvc/usage/spool
EXPOSE 8000
CMD ["modelsvc", "serve"]
