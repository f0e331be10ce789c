#!/usr/bin/env python3
"""shift_bounds.py: what an arm that knows the generator's topics could reach
on a planted shift (freshrec gen --shift-at), as `freshrec eval` measures it.

Each arm scores an event's topic from the user's earlier events' topics (an
item's topic is its id - 1 mod the plan's topics, as the generator deals
them); it hits when fewer than 10 of 100 random items' topics score above the
event's (HR@10/100, ties broken at random). Recovery is eval's: the events
after the shift until a window of W scored events has 90% of the HR of the W
before it. The arms but the last learn nothing of the shift from other
users; the last does: it counts, over all users, which topic followed
which (a user's last topic, then the event's), each count fading by half
every H events, and scores a user's topics through those transitions.

  build/freshrec gen --shift-at 0.5 --out shift.tsv
  python3 bench/shift_bounds.py shift.tsv
"""
import random
import sys


def read(path):
    K = shift = None
    ev, items = [], set()
    for line in open(path):
        if line.startswith("# plant topics"):
            K = int(line.split()[3])
        elif line.startswith("# plant shift event"):
            shift = int(line.split()[4])
        elif not line.startswith("#"):
            u, i = line.split("\t")[:2]
            ev.append((int(u), (int(i) - 1) % K))
            items.add(i)
    if K is None or shift is None:
        sys.exit("%s: no '# plant topics' or '# plant shift' line" % path)
    return K, shift, ev, len(items)


def recovery(hit, at, W, level=None):
    if level is None:
        level = sum(hit[at - W:at]) / W
    win = 0.0
    for j in range(at, len(hit)):
        win += hit[j] - (hit[j - W] if j >= at + W else 0.0)
        if j + 1 >= at + W and win / W >= 0.9 * level:
            return j + 1 - at, level
    return None, level


def run(K, ev, score, rng):
    """score(state, topic) -> the topics' scores; state is per user."""
    hit, state = [], {}
    for u, t in ev:
        s = score(state.setdefault(u, []), None)
        neg = [rng.randrange(K) for _ in range(100)]
        above = sum(1 for k in neg if s[k] + rng.random() * 1e-9 > s[t] + rng.random() * 1e-9)
        hit.append(1.0 if above < 10 else 0.0)
        score(state[u], t)
    return hit


def decayed(K, d, H):
    def score(hist, t):
        if t is not None:
            hist.insert(0, t)
            del hist[H:]
            return None
        s = [0.0] * K
        for j, k in enumerate(hist):
            s[k] += d ** j
        return s
    return score


def bayes(K, focus, hazard):
    """The generator's own model: a main topic that moves with this hazard."""
    def score(p, t):
        if not p:
            p.extend([1.0 / K] * K)
        if t is None:
            return [(1 - hazard) * x + hazard / K for x in p]
        q = [((1 - hazard) * x + hazard / K) * ((1 - focus) / K + (focus if k == t else 0.0))
             for k, x in enumerate(p)]
        z = sum(q)
        p[:] = [x / z for x in q]
        return None
    return score


def transitions(K, d, H, half):
    """The weighted topics of the user's newest H clicks (decay d), each
    mapped through the topic transitions counted over every user, the
    counts fading by half every `half` events."""
    C = [[0.0] * K for _ in range(K)]
    st = {"w": 1.0}
    g = 0.5 ** (1.0 / half)

    def score(hist, t):
        if t is not None:
            if hist:
                C[hist[0]][t] += st["w"]
            st["w"] /= g
            if st["w"] > 1e50:  # rescale: the counts' ratios are what count
                for row in C:
                    row[:] = [x / st["w"] for x in row]
                st["w"] = 1.0
            hist.insert(0, t)
            del hist[H:]
            return None
        h = [0.0] * K
        for j, k in enumerate(hist):
            h[k] += d ** j
        s = [0.0] * K
        for a in range(K):
            n = sum(C[a])
            if h[a] and n:
                for k in range(K):
                    s[k] += h[a] * C[a][k] / n
        return s
    return score


def main():
    K, at, ev, items = read(sys.argv[1] if len(sys.argv) > 1 else "shift.tsv")
    W = min(2000, max(200, (len(ev) - items) // 50))  # eval scores events of items seen before
    back, seen = [], set()
    for k, (u, _) in enumerate(ev):
        back.append(1.0 if k >= at and u in seen else 0.0)
        if k >= at:
            seen.add(u)
    print("shift at event %d of %d, %d topics, window %d" % (at, len(ev), K, W))
    print("%-50s %8d events" % ("users back (90% of a window)", recovery(back, at, W, 1.0)[0] or -1))
    arms = [("newest topic only", decayed(K, 1.0, 1)),
            ("newest 8, the j-th weighing 0.75^j", decayed(K, 0.75, 8)),
            ("newest 20, the j-th weighing 0.9^j", decayed(K, 0.9, 20))]
    arms += [("change-point filter, hazard %g" % h, bayes(K, 0.8, h)) for h in (0.01, 0.1)]
    arms += [("hmf's weights through transitions, half %d" % h, transitions(K, 0.75, 8, h))
             for h in (500, 2000, 10000)]
    for name, score in arms:
        n, level = recovery(run(K, ev, score, random.Random(1)), at, W)
        print("%-50s %8s events (level %.3f)" % (name, n if n is not None else "never", level))


if __name__ == "__main__":
    main()
