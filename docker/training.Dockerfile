# Training image: one CUDA GPU (Blackwell needs CUDA >= 12.8), PyTorch cu128 of the project's
# pinned version, offroad_training with the [train] and [hub] extras.
#   docker build -f docker/training.Dockerfile -t offroad/training .
#   docker run --gpus all --rm -it -v $PWD/data:/data -v $PWD/runs:/runs offroad/training \
#     offroad train --config /opt/offroad/offroad_training/offroad_training/configs/seed_full.yaml ...
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# Same versions as requirements/constraints.txt and python.txt (tests/test_docker_files.py).
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG USERNAME=offroad
ARG UID=1000

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends \
        python3 python3-venv python3-pip git libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

RUN (userdel -r ubuntu 2>/dev/null || true) \
    && useradd --create-home --uid "${UID}" --shell /bin/bash "${USERNAME}"

WORKDIR /opt/offroad
COPY requirements/constraints.txt requirements/constraints.txt
COPY requirements/python.txt requirements/python.txt
COPY offroad_core offroad_core
COPY offroad_training offroad_training

# torch first from the CUDA 12.8 index (local version +cu128 satisfies the ==2.13.0 pin), then
# the package with its extras under the project's constraints.
RUN python3 -m venv /opt/offroad/venv \
    && /opt/offroad/venv/bin/pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" \
        "torch==${TORCH_VERSION}" \
    && /opt/offroad/venv/bin/pip install --no-cache-dir -c requirements/constraints.txt \
        ./offroad_core "./offroad_training[train,hub]" \
    && /opt/offroad/venv/bin/python -c "import torch; assert torch.version.cuda.startswith('12.8'), torch.version.cuda"

ENV PATH=/opt/offroad/venv/bin:$PATH
RUN mkdir -p /data /runs && chown -R "${USERNAME}:${USERNAME}" /data /runs /opt/offroad
USER ${USERNAME}
WORKDIR /runs
CMD ["offroad", "--help"]
