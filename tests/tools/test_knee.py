"""The knee of a goodput series (tools/lab/knee.py) and the search around it
in sluice-sweep, on synthetic series."""

import pytest

from lab import knee


def series(rates, f):
    return [(r, f(r)) for r in rates]


RATES = [1000, 2000, 4000, 6000, 8000, 10000, 12000]


def test_saturates_early():
    # keeps up to 3000/s, then flat at 3000
    k = knee.find_knee(series(RATES, lambda r: min(r, 3000)))
    assert k["knee"] == 4000  # 3000 at 4000 offered still grew over 2000 at 2000
    assert k["goodput"] == 3000
    assert k["reached"] is True
    assert k["after"] == [6000, 8000, 10000, 12000]


def test_never_saturates_is_not_reached():
    k = knee.find_knee(series(RATES, lambda r: 0.99 * r))
    assert k["knee"] == 12000
    assert k["reached"] is False  # nothing above the knee was measured


def test_noisy_plateau_does_not_move_the_knee():
    # a plateau of 5000 with +-2% noise (below the 3% tolerance)
    noise = {6000: 1.02, 8000: 0.98, 10000: 1.019, 12000: 0.985}
    pts = [(1000, 1000), (2000, 2000), (4000, 4000), (5000, 4990)]
    pts += [(r, 5000 * noise[r]) for r in noise]
    k = knee.find_knee(pts)
    assert k["knee"] == 5000
    assert k["reached"] is True


def test_noise_above_the_tolerance_counts_as_growth():
    pts = [(1000, 1000), (2000, 2000), (3000, 2000), (4000, 2100)]  # +5%
    k = knee.find_knee(pts)
    assert k["knee"] == 4000
    assert k["reached"] is False


def test_collapse_past_the_knee():
    pts = [(5000, 5000), (10000, 9900), (15000, 14900), (20000, 9500), (30000, 5600)]
    k = knee.find_knee(pts)
    assert (k["knee"], k["goodput"], k["reached"]) == (15000, 14900, True)


def test_a_dip_and_recovery_is_not_a_knee():
    # a noisy low step must not end the search: the series grows again
    pts = [(1000, 1000), (2000, 2000), (3000, 1900), (4000, 4000)]
    k = knee.find_knee(pts)
    assert k["knee"] == 4000 and k["reached"] is False


def test_no_goodput_has_no_knee():
    k = knee.find_knee([(1000, 0), (2000, 0)])
    assert k["knee"] is None and k["reached"] is False


def test_order_does_not_matter():
    pts = series(RATES, lambda r: min(r, 3000))
    assert knee.find_knee(list(reversed(pts))) == knee.find_knee(pts)


def test_next_rate():
    assert knee.next_rate([(1000, 1000), (2000, 2000)], max_rate=10000) == pytest.approx(2600)
    assert knee.next_rate([(1000, 1000), (2000, 2000)], max_rate=2500) is None
    assert knee.next_rate([(1000, 1000), (2000, 1000)], max_rate=10000) is None  # reached
    assert knee.multiples(1000) == [1500, 2000, 3000, 4000]
    assert knee.fraction(500, 1000) == 0.5 and knee.fraction(5, 0) is None


# ---- the search in sluice-sweep, with a fake server instead of run_step


class Args:
    rate_list = [1000.0, 2000.0]
    max_rate = 20000.0
    max_extend = 12
    multiple_list = [1.5, 2.0, 3.0, 4.0]
    gap = 0.0
    retry_invalid = 0


def fake_row(cfg, rate, phase, mult, capacity, lag_limit=None):
    # keeps up to its capacity, then collapses: goodput capacity^2 / rate
    good = rate if rate <= capacity else capacity * capacity / rate
    return {"config": cfg["label"], "offered_rps": rate, "goodput_rps": good, "phase": phase,
            "multiple": mult or "", "invalid": lag_limit is not None and rate > lag_limit,
            "lat_p99_ms": 1.0, "sessions_within_slo": int(good), "status_503": 0,
            "resets_after_accept": 0}


def run_fake(sweep, monkeypatch, capacities, lag_limit=None, args=None, flaky=()):
    calls = []

    def fake_step(args, cfg, rate, idx, t0, dirs, phase, mult=None):
        calls.append((cfg["label"], round(rate), phase))
        row = fake_row(cfg, rate, phase, mult, capacities[cfg["label"]], lag_limit)
        if round(rate) in flaky and calls.count(calls[-1]) == 1:
            row["invalid"] = True  # the client lagged the first time only
        return row, [], []

    monkeypatch.setattr(sweep, "run_step", fake_step)
    configs = [{"label": n, "kind": n} for n in capacities]
    rows = []
    sweep.sweep(args or Args(), configs, {}, rows, [], [], 0.0)
    analyses = {c["label"]: sweep.analyse([r for r in rows if r["config"] == c["label"]])
                for c in configs}
    return calls, rows, analyses


def test_search_extends_until_the_knee_then_offers_multiples(sweep, monkeypatch):
    calls, rows, an = run_fake(sweep, monkeypatch, {"early": 1500, "late": 4000})
    # 'early' grows to 1125 at 2000 offered and falls at 2600; 'late' grows
    # to 3641 at 4394 (past its capacity) and falls at 5712
    assert an["early"]["reached"] and an["early"]["knee_offered"] == 2000
    assert an["late"]["reached"] and an["late"]["knee_offered"] == pytest.approx(4394)
    searched_late = [r for n, r, p in calls if n == "late" and p == "search"]
    assert searched_late == [1000, 2000, 2600, 3380, 4394, 5712]
    searched_early = [r for n, r, p in calls if n == "early" and p == "search"]
    assert searched_early == [1000, 2000, 2600]
    past = [(n, r) for n, r, p in calls if p == "past"]
    assert ("early", 3000) in past and ("early", 8000) in past and ("late", 17576) in past
    frac = [p["goodput_frac"] for p in an["early"]["past"]]
    assert frac == pytest.approx([1 / 1.5, 1 / 2, 1 / 3, 1 / 4])
    sess = [p["sessions_frac"] for p in an["early"]["past"]]
    assert sess == pytest.approx([1 / 1.5, 1 / 2, 1 / 3, 1 / 4], rel=0.01)


def test_search_that_never_saturates_fails(sweep, monkeypatch):
    calls, rows, an = run_fake(sweep, monkeypatch, {"fast": 1e9})
    assert not an["fast"]["reached"]
    assert max(r for _, r, _ in calls) <= Args.max_rate
    assert not any(p == "past" for _, _, p in calls)  # no knee: nothing past it

    class A:
        mode, session_len, duration, warmup, slo, timeout = "sessions", "5", 8.0, 2.0, 500.0, 2.0
        fileset, command, max_rate, cold = "/x", "tools/sluice-sweep", Args.max_rate, False
        max_extend = Args.max_extend

        class budget:
            @staticmethod
            def describe():
                return "no budget"

    for r in rows:
        r.update({k: 0 for k in ("lat_p50_ms", "lat_p999_ms", "lag_request_p99_ms",
                                 "lag_connect_p99_ms")})
        r.update({k: None for k in ("status_2xx", "status_4xx", "status_5xx",
                                    "connect_failures", "client_timeouts", "sessions_started",
                                    "cpu_us_per_reply")})
        r["new_fields"] = True
    text, ok = sweep.summary_text(A, [{"label": "fast"}], rows, an, "/tmp/x")
    assert ok is False
    assert "FAIL fast: knee not reached" in text
    assert "PASS" not in text


def test_invalid_steps_stop_the_search_and_do_not_count(sweep, monkeypatch):
    # the client cannot keep pace above 2600/s: those steps are INVALID
    calls, rows, an = run_fake(sweep, monkeypatch, {"s": 1e9}, lag_limit=2600)
    assert not an["s"]["reached"]
    assert [r for _, r, _ in calls] == [1000, 2000, 2600, 3380]
    assert an["s"]["invalid_steps"] == 1


def test_an_invalid_step_runs_again_once(sweep, monkeypatch):
    class Retry(Args):
        retry_invalid = 1

    calls, rows, an = run_fake(sweep, monkeypatch, {"s": 1500}, args=Retry(), flaky={2000})
    assert [r for _, r, p in calls if p == "search"] == [1000, 2000, 2000, 2600]
    assert [r["offered_rps"] for r in rows if r["phase"] == "search"] == [1000, 2000, 2600]
    assert an["s"]["reached"] and an["s"]["knee_offered"] == 2000
