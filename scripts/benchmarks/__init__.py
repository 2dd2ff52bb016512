"""Speed and memory measurements behind ``python -m scripts.benchmark``: the training step and
inference per step mode (``steps``), DDP (``ddp``), segment evaluation (``segments``), the GPU
configuration matrix (``gpu_matrix``)."""
