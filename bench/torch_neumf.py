#!/usr/bin/python3
"""torch_neumf.py — the reference for `make bench`: a PyTorch NeuMF of the
shape freshrec trains (GMF 32 factors; MLP embeddings 32 per side, layers
64-32-16-8; one output over [GMF ; MLP]), with the same number of negatives
(4 uniform per positive, drawn with torch.randint for the whole batch at
once; unlike freshrec's sampler it does not reject the user's own items, a
~6% collision on MovieLens that only makes the reference faster),
micro-batch (256 events = 1280 pairs),
loss (BCE) and evaluation (leave-one-out: each user's latest event ranked
against 100 items the user never touched, HR@10 and NDCG@10), written as a
PyTorch user would: sparse embeddings updated by SparseAdam, the dense
layers by Adam.

usage: torch_neumf.py --data u.data [--epochs N] [--threads T] [--seed S]
Prints one JSON line: pairs_per_s, events_per_s, hr10, ndcg10, ...
Reads the file in place; nothing is written."""
import argparse
import json
import math
import random
import sys
import time

import torch
import torch.nn as nn


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) >= 4:
                rows.append((p[0], p[1], int(p[3])))
    rows.sort(key=lambda r: r[2])  # stable: file order among equal times
    users, items = {}, {}
    ev = []
    for u, i, ts in rows:
        ev.append((users.setdefault(u, len(users)), items.setdefault(i, len(items)), ts))
    return ev, len(users), len(items)


class NeuMF(nn.Module):
    def __init__(self, nu, ni, dim=32, mlp=(64, 32, 16, 8)):
        super().__init__()
        half = mlp[0] // 2
        self.gu = nn.Embedding(nu, dim, sparse=True)
        self.gi = nn.Embedding(ni, dim, sparse=True)
        self.mu = nn.Embedding(nu, half, sparse=True)
        self.mi = nn.Embedding(ni, half, sparse=True)
        for e in (self.gu, self.gi, self.mu, self.mi):
            nn.init.normal_(e.weight, std=0.01)
        layers = []
        for a, b in zip(mlp[:-1], mlp[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(dim + mlp[-1], 1)

    def forward(self, u, i):
        g = self.gu(u) * self.gi(i)
        h = self.mlp(torch.cat([self.mu(u), self.mi(i)], dim=1))
        return self.out(torch.cat([g, h], dim=1)).squeeze(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--negatives", type=int, default=4)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    ev, nu, ni = load(a.data)
    last = {}
    for k, (u, _, _) in enumerate(ev):
        last[u] = k
    count = {}
    for u, _, _ in ev:
        count[u] = count.get(u, 0) + 1
    held = {u: k for u, k in last.items() if count[u] >= 2}
    held_set = set(held.values())
    train = [e for k, e in enumerate(ev) if k not in held_set]
    seen = {}
    for u, i, _ in ev:
        seen.setdefault(u, set()).add(i)

    model = NeuMF(nu, ni)
    sparse = [p for n, p in model.named_parameters() if n.split(".")[0] in ("gu", "gi", "mu", "mi")]
    dense = [p for n, p in model.named_parameters() if n.split(".")[0] not in ("gu", "gi", "mu", "mi")]
    opt_s = torch.optim.SparseAdam(sparse, lr=0.01)
    opt_d = torch.optim.Adam(dense, lr=0.001)
    lossf = nn.BCEWithLogitsLoss()
    K, B = a.negatives, a.batch

    tu = torch.tensor([u for u, _, _ in train])
    ti = torch.tensor([i for _, i, _ in train])
    pairs = 0
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        for s in range(0, len(train), B):
            u = tu[s:s + B]
            n = u.shape[0]
            u_t = torch.cat([u, u.repeat_interleave(K)])
            i_t = torch.cat([ti[s:s + B], torch.randint(ni, (n * K,))])
            y_t = torch.cat([torch.ones(n), torch.zeros(n * K)])
            opt_s.zero_grad()
            opt_d.zero_grad()
            loss = lossf(model(u_t, i_t), y_t)
            loss.backward()
            opt_s.step()
            opt_d.step()
            pairs += n * (K + 1)
    secs = time.perf_counter() - t0

    # leave-one-out against 100 items the user never touched
    hr = ndcg = 0.0
    erng = random.Random(a.seed + 1)
    model.eval()
    with torch.no_grad():
        for u, k in held.items():
            pos = ev[k][1]
            cands = [pos]
            while len(cands) < 101:
                j = erng.randrange(ni)
                if j not in seen[u]:
                    cands.append(j)
            s = model(torch.tensor([u] * 101), torch.tensor(cands))
            rank = int((s[1:] > s[0]).sum())
            if rank < 10:
                hr += 1
                ndcg += 1.0 / math.log2(rank + 2)
    n = max(1, len(held))
    print(json.dumps({"model": "torch-neumf", "torch": torch.__version__, "threads": a.threads,
                      "epochs": a.epochs, "pairs": pairs, "train_seconds": secs,
                      "pairs_per_s": pairs / secs, "events_per_s": pairs / (K + 1) / secs,
                      "hr10": hr / n, "ndcg10": ndcg / n, "loo_users": len(held)},
                     separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
