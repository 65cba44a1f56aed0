# Triton on the CPU, slim: the tritonserver binary of the pinned pip wheel (local_triton/tritonserver-wheel.txt,
# tritonserver 2.51.0 as in NGC 24.10) on python:3.11-slim, with onnxruntime run by the Python backend (the
# wheel has no onnxruntime backend), the triton_steps package, and model_store for the model-sync sidecar.
# The backends folder and the binary's place are laid out by `python -m local_triton install`, the same code
# local mode runs, so the image and `make serve` cannot drift; the command line is NGC's (docker-compose.yml).
# Built from the repository root:  docker build -f docker/triton-cpu.Dockerfile .
FROM python:3.11-slim

LABEL org.opencontainers.image.vendor="hf-audio-triton" \
      org.opencontainers.image.title="hf-audio-triton Triton (CPU)" \
      org.opencontainers.image.description="tritonserver 2.51 (pip wheel) on the CPU with the project's Python-backend steps" \
      org.opencontainers.image.licenses="Apache-2.0"

WORKDIR /opt/hf-audio-triton
COPY pyproject.toml README.md ./
COPY triton_steps ./triton_steps
COPY model_store ./model_store
COPY triton_control ./triton_control
COPY stub_health ./stub_health
COPY local_triton ./local_triton
RUN pip install --no-cache-dir ".[local]" \
    && pip install --no-cache-dir --no-deps -r local_triton/tritonserver-wheel.txt \
    && python -m local_triton install /opt/tritonserver \
    && python -c "import onnxruntime, openvino, triton_steps.audio, triton_steps.features, model_store.sync" \
    && rm -rf /root/.cache \
    && useradd --uid 1000 --no-create-home --shell /usr/sbin/nologin triton-server

ENV PATH=/opt/tritonserver/bin:${PATH}
EXPOSE 8000 8001 8002
USER triton-server
# the model repository is mounted here (docker-compose.yml)
CMD ["tritonserver", "--model-repository=/models"]
