# The on-demand loader (python -m loader): torch (CPU), transformers and the exporter, exporting Hub ids the
# gateway's GATEWAY_AUTOLOAD allows into the model repository. Built from the repository root:
#   docker build -f docker/loader.Dockerfile .
FROM python:3.11-slim

LABEL org.opencontainers.image.vendor="hf-audio-triton" \
      org.opencontainers.image.title="hf-audio-triton loader" \
      org.opencontainers.image.description="Exports Hub audio classifiers into the Triton repository on demand" \
      org.opencontainers.image.licenses="Apache-2.0"

# torch from PyTorch's CPU index: PyPI's Linux wheel pulls several GB of CUDA libraries an export never uses.
ARG TORCH=torch==2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
WORKDIR /app
COPY pyproject.toml README.md ./
COPY triton_steps ./triton_steps
COPY model_store ./model_store
COPY export ./export
COPY loader ./loader
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX}" "${TORCH}" \
    && pip install --no-cache-dir ".[loader]" && python -c "import loader.app, export.exporter"

ENV LOADER_HOST=0.0.0.0 \
    LOADER_PORT=8090 \
    HF_HOME=/hf-cache
EXPOSE 8090
# It writes the exported models into the mounted repository (in compose, a folder of the host's user), so it
# keeps the image's default user; in Kubernetes it writes to S3 and runs as a non-root user (deploy/k8s).
CMD ["python", "-m", "loader"]
