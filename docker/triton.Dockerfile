# Triton (NGC image: native onnxruntime and TensorRT backends, GPU) plus what the Python-backend steps
# import: the triton_steps package and its dependencies (numpy<2, PyAV, soxr), and model_store (boto3)
# for the model-sync sidecar and S3 repository URLs.
# 24.10 is tritonserver 2.51, the version the local mode (nvidia-pytriton 0.7.0) runs and the tests cover.
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3
FROM ${TRITON_IMAGE}

LABEL org.opencontainers.image.vendor="hf-audio-triton" \
      org.opencontainers.image.title="hf-audio-triton Triton (GPU)" \
      org.opencontainers.image.description="NGC tritonserver with the project's Python-backend steps" \
      org.opencontainers.image.licenses="Apache-2.0"

WORKDIR /opt/hf-audio-triton
COPY pyproject.toml README.md ./
COPY triton_steps ./triton_steps
COPY model_store ./model_store
COPY triton_control ./triton_control
COPY stub_health ./stub_health
RUN python3 -m pip install --no-cache-dir ".[steps,store]" \
    && python3 -c "import triton_steps.audio, triton_steps.features, triton_steps.scores, model_store.sync" \
    && rm -rf /root/.cache

# NGC's images ship this non-root user (uid 1000); the model repository is mounted read-only
USER triton-server
# the model repository is mounted here (docker-compose.yml)
CMD ["tritonserver", "--model-repository=/models"]
