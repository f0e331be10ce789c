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
Reads the file in place; nothing is written. The file is read as
`freshrec train --format movielens` reads it (data/dataset.c): a file it
refuses, or one with no interaction, is refused here too, with the line and
a non-zero exit, rather than trained on as nothing (ML-1M's `::` lines were
once read as empty and reported as HR@10 0.0 with exit 0)."""
import argparse
import json
import math
import random
import re
import sys
import time


class DataError(Exception):
    pass


def split_fields(s):
    """The fields of a line as data/dataset.c's split() makes them, step for
    step: on "::" when the line has one (ML-1M's ratings.dat), else on runs
    of tabs and spaces (ML-100k's u.data, `freshrec gen`); at most 4; a CR or
    LF ends the last one."""
    f = []
    colons = "::" in s
    p, n = 0, len(s)
    while p < n and len(f) < 4:
        if not colons:
            while p < n and s[p] in " \t":
                p += 1
        if p >= n or s[p] in "\r\n":
            break
        start = p
        if colons:
            e = s.find("::", p)
            p = e if e >= 0 else _TO_EOL.match(s, p).end()
        else:
            p = _TO_BLANK.match(s, p).end()
        f.append(s[start:p])
        if colons and p < n and s[p] == ":":
            p += 2
        elif p < n and s[p] in "\r\n":
            break
    return f


_TO_EOL = re.compile(r"[^\r\n]*")
_TO_BLANK = re.compile(r"[^ \t\r\n]*")
_TS = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+")


def load(path):
    """(events sorted by time, users, items): events are (user, item, ts_ms)
    with dense indices. Raises DataError (naming the line) where freshrec train
    would refuse the file, and on a file without interactions."""
    rows = []
    try:
        f = open(path, "rb")  # lines end at LF only, as getline() ends them
    except OSError as e:
        raise DataError("%s: %s" % (path, e.strerror))
    with f:
        for lineno, raw in enumerate(f, 1):
            line = raw.decode("utf-8", "surrogateescape")
            if line[:1] in ("#", "\n", "\r", ""):
                continue  # a comment or an empty line
            p = split_fields(line)
            if not p:
                continue  # a line of blanks
            if len(p) < 4 or not p[0] or not p[1]:
                raise DataError("%s:%d: expected 4 non-empty fields (user item rating ts)"
                                % (path, lineno))
            ts_s = p[3].rstrip(" \t")  # "::" lines may end in blanks
            if not ts_s or not _TS.fullmatch(ts_s) or int(ts_s) < 0:
                raise DataError("%s:%d: timestamp '%s' is not a non-negative integer"
                                % (path, lineno, ts_s))
            ts = int(ts_s)
            # seconds (as MovieLens has them) or already milliseconds
            rows.append((p[0], p[1], ts * 1000 if ts < 100000000000 else ts))
    if not rows:
        raise DataError("%s: no interactions" % path)
    rows.sort(key=lambda r: r[2])  # stable: file order among equal times
    users, items = {}, {}
    ev = []
    for u, i, ts in rows:
        ev.append((users.setdefault(u, len(users)), items.setdefault(i, len(items)), ts))
    return ev, len(users), len(items)


def make_neumf(torch, nn, nu, ni, dim=32, mlp=(64, 32, 16, 8)):
    """The model; torch comes in as an argument so that load() can be used
    (and checked) without PyTorch installed."""

    class NeuMF(nn.Module):
        def __init__(self):
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

    return NeuMF()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--negatives", type=int, default=4)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.epochs < 1 or a.batch < 1 or a.negatives < 0 or a.threads < 1:
        ap.error("--epochs, --batch and --threads must be at least 1, --negatives at least 0")
    try:
        ev, nu, ni = load(a.data)
    except DataError as e:
        print("torch_neumf.py: %s" % e, file=sys.stderr)
        return 1

    # imported only now: the reader needs no PyTorch, and a file it refuses
    # is refused before the import's seconds
    import torch
    import torch.nn as nn
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    last = {}
    for k, (u, _, _) in enumerate(ev):
        last[u] = k
    count = {}
    for u, _, _ in ev:
        count[u] = count.get(u, 0) + 1
    held = {u: k for u, k in last.items() if count[u] >= 2}
    held_set = set(held.values())
    train = [e for k, e in enumerate(ev) if k not in held_set]
    if not train:  # cannot happen with a non-empty file; no pairs is no figure
        print("torch_neumf.py: %s: nothing to train on" % a.data, file=sys.stderr)
        return 1
    seen = {}
    for u, i, _ in ev:
        seen.setdefault(u, set()).add(i)

    model = make_neumf(torch, nn, nu, ni)
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

    # leave-one-out against 100 distinct items the user never touched; as in
    # dataset_eval_loo, a user with fewer than 100 such items is not ranked
    # (drawn with replacement, a small file's candidates repeated, and the
    # draw never ended for a user who had touched every item)
    hr = ndcg = 0.0
    evaluated = 0
    erng = random.Random(a.seed + 1)
    model.eval()
    with torch.no_grad():
        for u, k in held.items():
            if ni - len(seen[u]) < 100:
                continue
            evaluated += 1
            pos = ev[k][1]
            cands = [pos]
            picked = set()
            while len(cands) < 101:
                j = erng.randrange(ni)
                if j not in seen[u] and j not in picked:
                    picked.add(j)
                    cands.append(j)
            s = model(torch.tensor([u] * 101), torch.tensor(cands))
            rank = int((s[1:] > s[0]).sum())
            if rank < 10:
                hr += 1
                ndcg += 1.0 / math.log2(rank + 2)
    n = max(1, evaluated)
    print(json.dumps({"model": "torch-neumf", "torch": torch.__version__, "threads": a.threads,
                      "epochs": a.epochs, "pairs": pairs, "train_seconds": secs,
                      "pairs_per_s": pairs / secs, "events_per_s": pairs / (K + 1) / secs,
                      "hr10": hr / n, "ndcg10": ndcg / n, "loo_users": evaluated},
                     separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
