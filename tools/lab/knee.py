"""The knee of a goodput series, found honestly.

Definition (README "Studying overload"): a step GROWS when its goodput is at
least (1 + GROW_TOL) times the best goodput of every step at a lower offered
rate (GROW_TOL = 3%, above the step-to-step noise of a plateau on a 2-core
machine). The knee is the highest offered rate whose step grows. The knee is
REACHED only when at least one step at a higher offered rate was measured and
none of them grew: goodput flattened or fell past it. Otherwise the search
goes on at RATE_STEP times the highest rate tried (up to a limit), and a
search that ends without a knee is a failure ("knee not reached"), never a
pass.

Steps the client could not keep up with (lag_ok false: INVALID) are left out:
there the client, not the server, set the pace.

A step run several times (sluice-sweep --repeat) counts with the goodput of
its median run (median_run): one slow server process neither ends the search
early nor makes a step past the knee look like a collapse.
"""

GROW_TOL = 0.03
RATE_STEP = 1.3
MULTIPLES = (1.5, 2.0, 3.0, 4.0)


def grows(good, best_below, tol=GROW_TOL):
    """True when GOOD is a gain over BEST_BELOW (None: nothing below)."""
    if good <= 0:
        return False
    return best_below is None or good >= best_below * (1.0 + tol)


def find_knee(points, tol=GROW_TOL):
    """POINTS: [(offered, goodput)], any order, valid steps only. Returns
    {"knee": offered or None, "goodput": its goodput, "reached": bool,
     "after": [offered rates above the knee], "growing": [offered of steps that grew]}."""
    pts = sorted(points)
    best, knee, knee_good, growing = None, None, 0.0, []
    for off, good in pts:
        if grows(good, best, tol):
            knee, knee_good = off, good
            growing.append(off)
        best = good if best is None else max(best, good)
    after = [off for off, _ in pts if knee is not None and off > knee]
    return {"knee": knee, "goodput": knee_good, "reached": knee is not None and bool(after),
            "after": after, "growing": growing}


def next_rate(points, max_rate, tol=GROW_TOL, step=RATE_STEP):
    """The next offered rate of the search, or None when the knee is reached
    or the next rate would pass MAX_RATE."""
    if not points:
        return None
    k = find_knee(points, tol)
    if k["reached"]:
        return None
    nxt = max(off for off, _ in points) * step
    return nxt if nxt <= max_rate * (1 + 1e-9) else None


def multiples(knee, factors=MULTIPLES):
    """The rates offered past the knee."""
    return [knee * f for f in factors]


def median_run(runs, value):
    """The run of RUNS whose VALUE(run) is the median; for an even count the
    lower of the two middle ones (ties in the order given). A run, not a mean
    of two, so that every other figure shown with the median comes from the
    same run as it."""
    ordered = sorted(runs, key=value)
    return ordered[(len(ordered) - 1) // 2]


def fraction(value, at_knee):
    """VALUE as a fraction of the knee's, or None when the knee's is 0."""
    return value / at_knee if at_knee else None
