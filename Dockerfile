# One image for every moodstream service; compose.yaml picks the command.
FROM python:3.11-slim
# GPU image (compose's detector): ONNX Runtime's CUDA/TensorRT build replaces the CPU one;
# the detector then serves the model card's ONNX artefact. No TensorFlow in any image.
ARG GPU=""
ENV PYTHONUNBUFFERED=1
# The image runs as nobody with no writable home: matplotlib (PDF charts) keeps its font
# cache here instead of rebuilding it in every process.
ENV MPLCONFIGDIR=/tmp/matplotlib
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 ffmpeg \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.lock .
RUN pip install --no-cache-dir -r requirements.lock \
    && if [ -n "$GPU" ]; then pip uninstall -y onnxruntime \
       && pip install --no-cache-dir "onnxruntime-gpu[cuda,cudnn]==1.31.1"; fi
# .dockerignore keeps .git, .venv, tests and config/ (camera URLs with passwords: compose
# mounts it at run time) out of the build context, so no secret lands in a layer.
COPY . .
RUN pip install --no-cache-dir --no-deps -e .
USER nobody
