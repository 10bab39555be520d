# The build Job's model-repository step (infra.modelrepo): NVIDIA's templates → the filled Triton model repository.
# Only what that step imports, so its identity (a content tag, infra/images.py) changes with these sources alone and a
# gateway release never touches a build Job. Built and pushed by .github/workflows/images.yml:
#   docker build -f infra/docker/build-tools.Dockerfile -t modelsvc-build:$(python3 -m infra.images tag build-tools) .
# the base by tag, as the gateway image: the workflow builds a content tag once, so the pushed digest stays put
FROM python:3.11-slim
WORKDIR /app
COPY requirements/build-tools.lock requirements/
# the lock (requirements/build-tools.in, pinned by `./dev lock`) holds every transitive version with its hash
RUN pip install --no-cache-dir --require-hashes -r requirements/build-tools.lock && useradd --uid 10001 build
COPY modelsvc/__init__.py modelsvc/__init__.py
COPY modelsvc/catalog/ modelsvc/catalog/
COPY infra/__init__.py infra/__init__.py
COPY infra/modelrepo/ infra/modelrepo/
ENV PYTHONPATH=/app PYTHONDONTWRITEBYTECODE=1
USER 10001
ENTRYPOINT []
CMD ["python", "-m", "infra.modelrepo", "--help"]
