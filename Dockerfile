# The gateway image (the Triton pods use NVIDIA's tritonserver image; see infra/).
# Build: docker build -t modelsvc-gateway:0.1.0 .
FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir -r requirements.lock
COPY modelsvc/ modelsvc/
COPY gateway/ gateway/
COPY infra/ infra/
RUN pip install --no-cache-dir --no-deps . && useradd --uid 10001 gateway
USER 10001
ENV MODELSVC_HOST=0.0.0.0 MODELSVC_PORT=8000 MODELSVC_DISCOVERY=dns MODELSVC_USAGE_LOG=/tmp/usage.jsonl
EXPOSE 8000
CMD ["modelsvc", "serve"]
