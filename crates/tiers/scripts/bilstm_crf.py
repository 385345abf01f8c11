#!/usr/bin/env python3
"""Cross-validate a character-level BiLSTM-CRF on the numeric entity types, beside the shipped
perceptron, on the same folds and tokens (a development experiment; nothing here is shipped).

Usage:
  cargo run --release -p fl-tiers --example wlp_cv -- \
      ../shared/data/protocols/wlp/train,../shared/data/protocols/wlp/dev --dump cv.jsonl
  python bilstm_crf.py cv.jsonl FOLD [EPOCHS [SEED ...]]     (PyTorch; 2 threads unless NT=1)

Model (Lample et al., NAACL 2016; Ma & Hovy, ACL 2016): per protocol line, each token is a
100-dim word embedding (lower-cased, words seen twice in the training folds), a character CNN
(30-dim characters, 60 filters of width 3, max-pooled) and a 20-dim word-shape embedding;
a 2-layer BiLSTM (150 per direction, dropout 0.5), a linear layer to BIO tags over Amount,
Concentration, Temperature, Time, Speed and pH, and a linear-chain CRF (Lafferty et al.
2001) trained by negative log-likelihood with Adam (lr 1e-3, batches of 32 lines, gradient
norm clipped at 5) for a fixed number of epochs (no selection on the held-out fold).
Scores are exact span and type matches, pooled over the fold's protocols, as `wlp_eval`.
Also scored: votes of the perceptron with the BiLSTM-CRF seeds run so far on the fold.
"""
import json
import os
import random
import sys
import time
from collections import Counter

import torch
import torch.nn as nn

torch.set_num_threads(int(os.environ.get("NT", "2")))
NUMERIC = ["Amount", "Concentration", "Temperature", "Time", "Speed", "pH"]
TAGS = ["O"] + [f"{p}-{k}" for k in NUMERIC for p in "BI"]
TAG_INDEX = {t: i for i, t in enumerate(TAGS)}


def score(pairs):
    """Exact-match F1, precision, recall over the numeric types."""
    gold = predicted = correct = 0
    for g, p in pairs:
        g = {tuple(x) for x in g if x[2] in NUMERIC}
        p = [tuple(x) for x in p if x[2] in NUMERIC]
        gold += len(g)
        predicted += len(p)
        correct += sum(1 for x in p if x in g)
    pr, rc = correct / max(predicted, 1), correct / max(gold, 1)
    return round(2 * pr * rc / max(pr + rc, 1e-9), 4), round(pr, 4), round(rc, 4)


def lines_of(doc):
    out = {}
    for t in doc["tokens"]:
        out.setdefault(t[3], []).append(t)
    return list(out.values())


def labels(doc, toks):
    """BIO tags of the gold numeric entities that start and end on token boundaries."""
    lab = ["O"] * len(toks)
    start = {t[1]: i for i, t in enumerate(toks)}
    end = {t[2]: i for i, t in enumerate(toks)}
    for s, e, k in doc["gold"]:
        if k not in NUMERIC or s not in start or e not in end:
            continue
        a, b = start[s], end[e]
        if any(x != "O" for x in lab[a:b + 1]):
            continue
        lab[a] = "B-" + k
        for j in range(a + 1, b + 1):
            lab[j] = "I-" + k
    return [TAG_INDEX[x] for x in lab]


def spans(toks, tags):
    out, cur = [], None
    for t, y in zip(toks, tags):
        name = TAGS[y]
        if name == "O":
            if cur:
                out.append(cur)
                cur = None
            continue
        p, k = name.split("-", 1)
        if p == "B" or cur is None or cur[2] != k:
            if cur:
                out.append(cur)
            cur = [t[1], t[2], k]
        else:
            cur[1] = t[2]
    if cur:
        out.append(cur)
    return out


def shape(w):
    s = []
    for ch in w:
        c = "d" if ch.isdigit() else "A" if ch.isupper() else "a" if ch.isalpha() else ch
        if not s or s[-1] != c:
            s.append(c)
    return "".join(s)[:6]


class CRF(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.trans = nn.Parameter(torch.zeros(n, n))
        self.start = nn.Parameter(torch.zeros(n))
        self.end = nn.Parameter(torch.zeros(n))

    def nll(self, em, y, mask):
        """Negative log-likelihood; em: B×T×tags, y: B×T, mask: B×T (bool)."""
        _, length, _ = em.shape
        alpha = self.start + em[:, 0]
        sc = self.start[y[:, 0]] + em[:, 0].gather(1, y[:, :1]).squeeze(1)
        for t in range(1, length):
            m = mask[:, t]
            na = torch.logsumexp(alpha.unsqueeze(2) + self.trans.unsqueeze(0), 1) + em[:, t]
            alpha = torch.where(m.unsqueeze(1), na, alpha)
            st = self.trans[y[:, t - 1], y[:, t]] + em[:, t].gather(1, y[:, t:t + 1]).squeeze(1)
            sc = sc + st * m
        last = y.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)
        sc = sc + self.end[last]
        return (torch.logsumexp(alpha + self.end, 1) - sc).sum()

    def decode(self, em):
        """Viterbi over one line's emissions (T×tags)."""
        v, back = self.start + em[0], []
        for t in range(1, em.shape[0]):
            best, idx = (v.unsqueeze(1) + self.trans).max(0)
            back.append(idx)
            v = best + em[t]
        y = [int((v + self.end).argmax())]
        for idx in reversed(back):
            y.append(int(idx[y[-1]]))
        return y[::-1]


class Net(nn.Module):
    def __init__(self, words, chars, shapes, tags, wd=100, cd=30, cf=60, h=150):
        super().__init__()
        self.we = nn.Embedding(words, wd)
        self.ce = nn.Embedding(chars, cd, padding_idx=0)
        self.se = nn.Embedding(shapes, 20)
        self.conv = nn.Conv1d(cd, cf, 3, padding=1)
        self.lstm = nn.LSTM(wd + cf + 20, h, num_layers=2, bidirectional=True, batch_first=True,
                            dropout=0.5)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(2 * h, tags)
        self.crf = CRF(tags)

    def emissions(self, w, c, sh):
        b, t, length = c.shape
        ce = self.ce(c.view(b * t, length)).transpose(1, 2)
        cf = torch.relu(self.conv(ce)).max(2).values.view(b, t, -1)
        x = torch.cat([self.we(w), cf, self.se(sh)], 2)
        x, _ = self.lstm(self.drop(x))
        return self.out(self.drop(x))


def run(docs, fold, epochs, seed):
    random.seed(seed)
    torch.manual_seed(seed)
    train = [d for d in docs if d["fold"] != fold]
    held = [d for d in docs if d["fold"] == fold]
    counts = Counter(t[0].lower() for d in train for t in d["tokens"])
    words = {w: i + 2 for i, w in enumerate(w for w, c in counts.items() if c >= 2)}
    chars, shapes = {}, {}
    for d in train:
        for t in d["tokens"]:
            for ch in t[0]:
                chars.setdefault(ch, len(chars) + 2)
    for d in train:
        for t in d["tokens"]:
            shapes.setdefault(shape(t[0]), len(shapes) + 2)

    def encode(toks):
        w = [words.get(t[0].lower(), 1) for t in toks]
        sh = [shapes.get(shape(t[0]), 1) for t in toks]
        c = [[chars.get(ch, 1) for ch in t[0][:20]] for t in toks]
        return w, c, sh

    def batch(items):
        b, t = len(items), max(len(x[0]) for x in items)
        length = max(len(cc) for x in items for cc in x[1])
        w = torch.zeros(b, t, dtype=torch.long)
        c = torch.zeros(b, t, max(length, 3), dtype=torch.long)
        sh = torch.zeros(b, t, dtype=torch.long)
        y = torch.zeros(b, t, dtype=torch.long)
        m = torch.zeros(b, t, dtype=torch.bool)
        for i, (ww, cc, ss, yy) in enumerate(items):
            n = len(ww)
            w[i, :n], sh[i, :n], y[i, :n], m[i, :n] = (
                torch.tensor(ww), torch.tensor(ss), torch.tensor(yy), True)
            for j, ch in enumerate(cc):
                c[i, j, :len(ch)] = torch.tensor(ch)
        return w, c, sh, y, m

    data = []
    for d in train:
        for toks in lines_of(d):
            w, c, sh = encode(toks)
            data.append((w, c, sh, labels(d, toks)))
    net = Net(len(words) + 2, len(chars) + 2, len(shapes) + 2, len(TAGS))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for epoch in range(epochs):
        t0, total = time.time(), 0.0
        net.train()
        random.shuffle(data)
        for i in range(0, len(data), 32):
            items = data[i:i + 32]
            w, c, sh, y, m = batch(items)
            loss = net.crf.nll(net.emissions(w, c, sh), y, m) / len(items)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            total += loss.item()
        print(f"fold {fold} seed {seed} epoch {epoch} loss {total:.1f} {time.time() - t0:.0f} s",
              file=sys.stderr, flush=True)
    net.eval()
    predicted = {}
    with torch.no_grad():
        for d in held:
            out = []
            for toks in lines_of(d):
                w, c, sh = encode(toks)
                bw, bc, bs, _, _ = batch([(w, c, sh, [0] * len(w))])
                out += spans(toks, net.crf.decode(net.emissions(bw, bc, bs)[0]))
            predicted[d["path"]] = out
    return predicted


def vote(doc, runs, k, perceptron_weight):
    """Spans with at least k votes (the perceptron's count perceptron_weight), overlaps resolved
    by votes, then for the perceptron's spans."""
    votes = Counter()
    for s in {tuple(x) for x in doc["predicted"] if x[2] in NUMERIC}:
        votes[s] += perceptron_weight
    for r in runs:
        for s in {tuple(x) for x in r[doc["path"]]}:
            votes[s] += 1
    perceptron = {tuple(x) for x in doc["predicted"]}
    out = []
    for s in sorted((s for s, v in votes.items() if v >= k),
                    key=lambda s: (-votes[s], s not in perceptron)):
        if not any(x[0] < s[1] and s[0] < x[1] for x in out):
            out.append(s)
    return out


def main():
    docs = [json.loads(line) for line in open(sys.argv[1])]
    fold = int(sys.argv[2])
    epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    seeds = [int(s) for s in sys.argv[4:]] or [0]
    held = [d for d in docs if d["fold"] == fold]
    print("fold", fold, "perceptron (shipped recipe): F1, P, R", score(
        [(d["gold"], d["predicted"]) for d in held]), flush=True)
    runs = []
    for seed in seeds:
        out = f"{sys.argv[1]}.fold{fold}.seed{seed}.json"
        if os.path.exists(out):
            runs.append(json.load(open(out)))
        else:
            runs.append(run(docs, fold, epochs, seed))
            json.dump(runs[-1], open(out, "w"))
        print("fold", fold, "BiLSTM-CRF seed", seed, score(
            [(d["gold"], runs[-1][d["path"]]) for d in held]), flush=True)
    for weight in (1, 1.5, 2):
        for k in (1.5, 2, 2.5, 3):
            print("fold", fold, f"vote of the perceptron (weight {weight}) and {len(runs)} seeds,"
                  f" ≥ {k} votes", score([(d["gold"], vote(d, runs, k, weight)) for d in held]))


if __name__ == "__main__":
    main()
