#!/usr/bin/python3
"""torch_neumf.py — the batch reference: a PyTorch NeuMF of the shape
freshrec trains (GMF 32 factors; MLP embeddings 32 per side, layers
64-32-16-8; one output over [GMF ; MLP]), with the same number of negatives
(4 uniform per positive, drawn with torch.randint for the whole batch at
once, a negative among the user's training positives drawn again),
micro-batch (256 events = 1280 pairs), loss (BCE) and evaluation, written as
a PyTorch user would write it: sparse embeddings updated by SparseAdam, the
dense layers by Adam, each epoch's events in a new random order.

The evaluation is `freshrec train --eval loo`'s, exactly: each user's latest
event (of two or more) held out and ranked against the same 100 items the
user never touched (drawn with base/rng.h's generator, as dataset_eval_loo
draws them, from the same seed), a tie counted against the held-out item;
HR@10 and NDCG@10, and the popularity baseline on the same candidates
(pop_hr10 equals freshrec's with the same --seed: the check that both rank
the same candidates).

usage: torch_neumf.py --data u.data [--epochs N] [--threads T] [--seed S]
           [--lr-sparse X] [--lr-dense X] [--lr-grid X,Y,...]
           [--select test|valid] [--no-shuffle]
--lr-grid trains one model per rate (the rate for both optimizers, each
model from the same seed) and reports the one it picks. --select test (the
default) picks the best HR@10 on the test figure itself: an optimistic
reference, tuned on what it is judged by. --select valid picks as a PyTorch
user tuning honestly would: each rate trained on the training set less a
validation split (each user's latest training event, for users with two or
more, ranked against 100 items the user never touched, drawn from seed +
1), the best validation HR@10 chosen, and that rate trained again on the
whole training set and reported on the test. --no-shuffle streams every
epoch in time order, as `freshrec train` does without --shuffle (make bench's throughput rows).
Prints one JSON line (pairs_per_s, events_per_s, hr10, ndcg10, pop_hr10,
the rates chosen, and with --lr-grid every rate's figures); with --lr-grid one
line per rate on stderr as it is done.
Reads the file in place; nothing is written. The file is read as
`freshrec train --format movielens` reads it (data/dataset.c): a file it
refuses, or one with no interaction, is refused here too, with the line and
a non-zero exit, rather than trained on as nothing (ML-1M's `::` lines were
once read as empty and reported as HR@10 0.0 with exit 0)."""
import argparse
import json
import math
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
    # indices in file order, as dataset_load interns them: the leave-one-out
    # draw walks users and draws items by these indices
    users, items = {}, {}
    ev = [(users.setdefault(u, len(users)), items.setdefault(i, len(items)), ts)
          for u, i, ts in rows]
    ev.sort(key=lambda r: r[2])  # stable: file order among equal times
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


_M64 = (1 << 64) - 1


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & _M64


class Xoshiro:
    """base/rng.h step for step (xoshiro256**, seeded by splitmix64): the
    leave-one-out candidates are drawn with the generator and the draws of
    dataset_eval_loo, so that with the same seed this script and `freshrec
    train --eval loo` rank every held-out item against the same 100 items
    (pop_hr10, the same candidates ranked by training popularity, comes out
    identical on both sides: that is the check)."""

    def __init__(self, seed):
        x = seed & _M64
        self.s = []
        for _ in range(4):
            x = (x + 0x9e3779b97f4a7c15) & _M64
            z = x
            z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & _M64
            z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & _M64
            self.s.append(z ^ (z >> 31))

    def next(self):
        s0, s1, s2, s3 = self.s
        r = (_rotl((s1 * 5) & _M64, 7) * 9) & _M64
        t = (s1 << 17) & _M64
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = _rotl(s3, 45)
        self.s = [s0, s1, s2, s3]
        return r

    def below(self, n):
        return ((self.next() >> 32) * n) >> 32


LOO_NEGATIVES = 100


def loo_candidates(ev, nu, ni, held, seed):
    """{user: [held-out item, then 100 distinct items the user never touched]}
    as dataset_eval_loo draws them: users in index order, one generator
    seeded with seed ^ 0xe7a1, items drawn uniformly over every item of the
    file, a user with fewer than 100 untouched items not ranked (and no one
    when the file has fewer than 102 items)."""
    if ni < LOO_NEGATIVES + 2:
        return {}
    seen = {}
    for u, i, _ in ev:
        seen.setdefault(u, set()).add(i)
    r = Xoshiro(seed ^ 0xE7A1)
    out = {}
    for u in range(nu):
        if u not in held:
            continue
        s = seen[u]
        if ni - len(s) < LOO_NEGATIVES:
            continue
        c = [ev[held[u]][1]]
        picked = set()
        while len(c) < LOO_NEGATIVES + 1:
            it = r.below(ni)
            if it not in s and it not in picked:
                picked.add(it)
                c.append(it)
        out[u] = c
    return out


def loo_split(ev):
    """The split of dataset_loo: each user's latest event (the last of equal
    times in file order) held out when the user has at least two. Returns
    ({user: index of the held-out event in ev}, the other events)."""
    last, count = {}, {}
    for k, (u, _, _) in enumerate(ev):
        last[u] = k
        count[u] = count.get(u, 0) + 1
    held = {u: k for u, k in last.items() if count[u] >= 2}
    held_set = set(held.values())
    return held, [e for k, e in enumerate(ev) if k not in held_set]


def rank_of(scores):
    """metric_rank (learner/rank.c): the candidates scored at least as high as
    the held-out item (scores[0]); a tie counts against it."""
    return sum(1 for x in scores[1:] if x >= scores[0])


def hr_ndcg(ranks):
    n = max(1, len(ranks))
    hr = sum(1 for r in ranks if r < 10) / n
    ndcg = sum(1.0 / math.log2(r + 2) for r in ranks if r < 10) / n
    return hr, ndcg


def parse_grid(s):
    try:
        g = [float(x) for x in s.split(",")]
    except ValueError:
        g = []
    if not g or any(not (x > 0 and x < 100) for x in g):
        raise argparse.ArgumentTypeError("'%s': expected learning rates in (0, 100), comma-separated" % s)
    return g


def train_eval(torch, nn, a, nu, ni, tu, ti, keys, cands, lr_s, lr_d):
    """One model trained from the seed with these learning rates, then ranked
    on cands: {hr10, ndcg10, pairs, train_seconds}."""
    torch.manual_seed(a.seed)
    order = torch.Generator()
    order.manual_seed(a.seed)
    model = make_neumf(torch, nn, nu, ni)
    emb = ("gu", "gi", "mu", "mi")
    sparse = [p for n, p in model.named_parameters() if n.split(".")[0] in emb]
    dense = [p for n, p in model.named_parameters() if n.split(".")[0] not in emb]
    opt_s = torch.optim.SparseAdam(sparse, lr=lr_s)
    opt_d = torch.optim.Adam(dense, lr=lr_d)
    lossf = nn.BCEWithLogitsLoss()
    K, B, N = a.negatives, a.batch, tu.shape[0]
    pairs = 0
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        if a.shuffle:
            perm = torch.randperm(N, generator=order)
            eu, ei = tu[perm], ti[perm]
        else:
            eu, ei = tu, ti
        for s in range(0, N, B):
            u = eu[s:s + B]
            n = u.shape[0]
            un = u.repeat_interleave(K)
            neg = torch.randint(ni, (n * K,))
            # a negative the user has among the training positives is drawn
            # again (a few rounds; what is left is rare and kept), as the
            # NCF code does and as freshrec's sampler rejects the user's items
            for _ in range(4):
                k = un * ni + neg
                at = torch.searchsorted(keys, k).clamp_(max=keys.shape[0] - 1)
                hit = keys[at] == k
                nh = int(hit.sum())
                if nh == 0:
                    break
                neg[hit] = torch.randint(ni, (nh,))
            u_t = torch.cat([u, un])
            i_t = torch.cat([ei[s:s + B], neg])
            y_t = torch.cat([torch.ones(n), torch.zeros(n * K)])
            opt_s.zero_grad()
            opt_d.zero_grad()
            loss = lossf(model(u_t, i_t), y_t)
            loss.backward()
            opt_s.step()
            opt_d.step()
            pairs += n * (K + 1)
    secs = time.perf_counter() - t0

    ranks = []
    model.eval()
    if cands:
        users = sorted(cands)
        with torch.no_grad():
            uu = torch.tensor(users).repeat_interleave(LOO_NEGATIVES + 1)
            ii = torch.tensor([i for u in users for i in cands[u]])
            sc = model(uu, ii).view(len(users), LOO_NEGATIVES + 1)
            ranks = [int((row[1:] >= row[0]).sum()) for row in sc]
    hr, ndcg = hr_ndcg(ranks)
    return {"hr10": hr, "ndcg10": ndcg, "pairs": pairs, "train_seconds": secs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--negatives", type=int, default=4)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lr-sparse", type=float, default=0.01, help="SparseAdam, the embeddings [0.01]")
    ap.add_argument("--lr-dense", type=float, default=0.001, help="Adam, the dense layers [0.001]")
    ap.add_argument("--lr-grid", type=parse_grid, default=None, metavar="LR,LR,...",
                    help="train once per rate (for both optimizers) and report the best HR@10")
    ap.add_argument("--select", choices=("test", "valid"), default="test",
                    help="--lr-grid: pick the rate on the test figure (optimistic) or on a "
                         "validation split [test]")
    ap.add_argument("--no-shuffle", dest="shuffle", action="store_false",
                    help="every epoch in time order (the order freshrec train streams)")
    a = ap.parse_args()
    if a.epochs < 1 or a.batch < 1 or a.negatives < 0 or a.threads < 1:
        ap.error("--epochs, --batch and --threads must be at least 1, --negatives at least 0")
    if not (a.lr_sparse > 0 and a.lr_dense > 0):
        ap.error("--lr-sparse and --lr-dense must be positive")
    try:
        ev, nu, ni = load(a.data)
    except DataError as e:
        print("torch_neumf.py: %s" % e, file=sys.stderr)
        return 1

    held, train = loo_split(ev)
    if not train:  # cannot happen with a non-empty file; no pairs is no figure
        print("torch_neumf.py: %s: nothing to train on" % a.data, file=sys.stderr)
        return 1
    cands = loo_candidates(ev, nu, ni, held, a.seed)
    pop = [0] * ni
    for _, i, _ in train:
        pop[i] += 1
    pop_hr, pop_ndcg = hr_ndcg([rank_of([pop[i] for i in c]) for c in cands.values()])

    # imported only now: the reader needs no PyTorch, and a file it refuses
    # is refused before the import's seconds
    import torch
    import torch.nn as nn
    torch.set_num_threads(a.threads)
    tu = torch.tensor([u for u, _, _ in train])
    ti = torch.tensor([i for _, i, _ in train])
    keys = torch.unique(tu * ni + ti)  # sorted: the training (user, item) pairs

    rates = [(lr, lr) for lr in a.lr_grid] if a.lr_grid else [(a.lr_sparse, a.lr_dense)]
    valid = bool(a.lr_grid) and a.select == "valid"
    judged_on = (tu, ti, keys, cands)
    if valid:  # each rate judged on a split of the training set, not on the test
        vheld, fit = loo_split(train)
        vu = torch.tensor([u for u, _, _ in fit])
        vi = torch.tensor([i for _, i, _ in fit])
        judged_on = (vu, vi, torch.unique(vu * ni + vi),
                     loo_candidates(train, nu, ni, vheld, a.seed + 1))
    runs = []
    for lr_s, lr_d in rates:
        r = train_eval(torch, nn, a, nu, ni, *judged_on, lr_s, lr_d)
        r["lr_sparse"], r["lr_dense"] = lr_s, lr_d
        runs.append(r)
        if a.lr_grid:  # progress: a grid at 20 epochs takes minutes
            print("torch_neumf.py: lr %g, %d epochs%s: %s HR@10 %.4f NDCG@10 %.4f (%.1f s)"
                  % (lr_s, a.epochs, " shuffled" if a.shuffle else " in time order",
                     "validation" if valid else "test", r["hr10"], r["ndcg10"],
                     r["train_seconds"]), file=sys.stderr, flush=True)
    best = max(runs, key=lambda r: r["hr10"])  # the first of equal ones
    if valid:  # the rate picked, trained on the whole training set, on the test
        lr_s, lr_d = best["lr_sparse"], best["lr_dense"]
        best = train_eval(torch, nn, a, nu, ni, tu, ti, keys, cands, lr_s, lr_d)
        best["lr_sparse"], best["lr_dense"] = lr_s, lr_d
    secs = best["train_seconds"]
    out = {"model": "torch-neumf", "torch": torch.__version__, "threads": a.threads,
           "epochs": a.epochs, "shuffle": a.shuffle, "lr_sparse": best["lr_sparse"],
           "lr_dense": best["lr_dense"], "pairs": best["pairs"], "train_seconds": secs,
           "pairs_per_s": best["pairs"] / secs,
           "events_per_s": best["pairs"] / (a.negatives + 1) / secs,
           "hr10": best["hr10"], "ndcg10": best["ndcg10"], "loo_users": len(cands),
           "pop_hr10": pop_hr, "pop_ndcg10": pop_ndcg}
    if a.lr_grid:
        out["select"] = a.select
        out["grid"] = [{"lr": r["lr_sparse"], ("valid_hr10" if valid else "hr10"): r["hr10"],
                        ("valid_ndcg10" if valid else "ndcg10"): r["ndcg10"],
                        "train_seconds": r["train_seconds"]} for r in runs]
    print(json.dumps(out, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
