# One image for every moodstream service; compose.yaml picks the command.
FROM python:3.11-slim
ARG TF_EXTRA=""
ENV PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 ffmpeg \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.lock .
RUN pip install --no-cache-dir -r requirements.lock \
    && if [ -n "$TF_EXTRA" ]; then pip install --no-cache-dir "tensorflow[$TF_EXTRA]==2.21.0"; fi
# .dockerignore keeps .git, .venv, tests and config/ (camera URLs with passwords: compose
# mounts it at run time) out of the build context, so no secret lands in a layer.
COPY . .
RUN pip install --no-cache-dir --no-deps -e .
USER nobody
