"""Times PyTorch (CPU) training an MLP 784-128-10 with SGD + momentum on random data, the work of
fl-benches' `train_timing`. Run by `cargo xtask bench-compare train` (needs `pip install torch`).
Prints one JSON line per batch size: examples/s, median of REPS epochs over 10,000 examples.
"""
import json
import statistics
import sys
import time

import torch

REPS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
torch.set_num_threads(2)
torch.manual_seed(0)
n = 10_000
x = torch.rand(n, 784)
y = torch.randint(0, 10, (n,))
for batch in (64, 128):
    model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch():
        perm = torch.randperm(n)
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()

    epoch()
    ts = []
    for _ in range(REPS):
        t0 = time.perf_counter()
        epoch()
        ts.append(time.perf_counter() - t0)
    print(json.dumps({"batch": batch, "examples_per_s": n / statistics.median(ts), "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
