"""Writes torch_like.safetensors and torch_like.json with Python's safetensors (numpy backend).

Provenance of the fixture used by crates/core/tests/safetensors_python.rs. Run from this directory:
    python3 -m venv /tmp/st && /tmp/st/bin/pip install safetensors numpy
    /tmp/st/bin/python make_torch_like.py
The layout mimics a PyTorch state_dict of a small conv net; values are seeded random normals.
"""
import json

import numpy as np
import safetensors
from safetensors.numpy import save_file

rng = np.random.default_rng(20261123)
tensors = {
    "conv1.weight": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
    "conv1.bias": rng.standard_normal((4,)).astype(np.float32),
    "fc.weight": rng.standard_normal((3, 16)).astype(np.float32),
    "fc.bias": np.array([0.5, -0.25, 1e-7], dtype=np.float32),
    "head.scale": np.array(2.5, dtype=np.float32),  # rank 0
    "emb.half": rng.standard_normal((2, 3)).astype(np.float16),
    "stats.f64": rng.standard_normal((5,)).astype(np.float64),
}
save_file(tensors, "torch_like.safetensors", metadata={"format": "pt"})
expected = {
    "safetensors_version": safetensors.__version__,
    "numpy_version": np.__version__,
    "tensors": {
        name: {"shape": list(t.shape), "values": [float(v) for v in t.reshape(-1)]}
        for name, t in tensors.items()
    },
}
with open("torch_like.json", "w") as f:
    json.dump(expected, f, indent=1)
