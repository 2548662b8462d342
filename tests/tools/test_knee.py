"""The knee of a goodput series (tools/lab/knee.py) and the search around it
in sluice-sweep (one run per step and --repeat), on synthetic series."""

import csv

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
    repeat = 1


class Report(Args):
    """What summary_text and write_results read of the options."""
    mode, session_len, duration, warmup, slo, timeout = "sessions", "5", 8.0, 2.0, 500.0, 2.0
    fileset, command, cold, tuning = "/x", "tools/sluice-sweep", False, False

    class budget:
        @staticmethod
        def describe():
            return "no budget"


def fake_row(cfg, rate, phase, mult, capacity, lag_limit=None):
    # keeps up to its capacity, then collapses: goodput capacity^2 / rate
    good = rate if rate <= capacity else capacity * capacity / rate
    row = {"config": cfg["label"], "server": cfg["kind"], "offered_rps": rate,
           "goodput_rps": good, "phase": phase, "multiple": mult or "",
           "invalid": lag_limit is not None and rate > lag_limit,
           "lat_p99_ms": 1.0, "sessions_within_slo": int(good), "status_503": 0,
           "resets_after_accept": 0, "new_fields": True}
    # the rest of what the table and the plot data show
    row.update({k: 0 for k in ("lat_p50_ms", "lat_p999_ms", "lag_request_p99_ms",
                               "lag_connect_p99_ms", "reply_rps", "rate_503",
                               "sessions_ok_per_s", "mbit_s")})
    row.update({k: None for k in ("status_2xx", "status_4xx", "status_5xx", "connect_failures",
                                  "client_timeouts", "sessions_started", "cpu_us_per_reply")})
    return row


def run_fake(sweep, monkeypatch, capacities, lag_limit=None, args=None, flaky=(), tweak=None,
             discarded=None):
    """The sweep against fake servers of CAPACITIES. FLAKY: rates whose first
    attempt of every run is INVALID; TWEAK(row, rep, attempt) changes a run's
    row (attempt 1, 2, ...: the reruns of an INVALID run)."""
    calls, attempts = [], {}

    def fake_step(args, cfg, rate, idx, t0, dirs, phase, mult=None, rep=0):
        calls.append((cfg["label"], round(rate), phase))
        key = (cfg["label"], round(rate), phase, rep)
        attempts[key] = attempts.get(key, 0) + 1
        row = fake_row(cfg, rate, phase, mult, capacities[cfg["label"]], lag_limit)
        if round(rate) in flaky and attempts[key] == 1:
            row["invalid"] = True  # the client lagged the first time only
        if tweak:
            tweak(row, rep, attempts[key])
        return row, [], []

    monkeypatch.setattr(sweep, "run_step", fake_step)
    configs = [{"label": n, "kind": n} for n in capacities]
    rows = []
    sweep.sweep(args or Args(), configs, {}, rows, [], [], 0.0, discarded)
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
    text, ok = sweep.summary_text(Report, [{"label": "fast"}], rows, an, "/tmp/x")
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


# ---- --repeat: every step run N times, each step by its median run


class Three(Args):
    repeat = 3


def scaled(rate, rep, factor, phase="search"):
    """A TWEAK: the run REP at offered RATE gets FACTOR x its goodput (and
    sessions: one process that is slower all through its run)."""
    def tweak(row, r, attempt):
        if round(row["offered_rps"]) == rate and r == rep and row["phase"] == phase:
            row["goodput_rps"] *= factor
            row["sessions_within_slo"] = int(row["goodput_rps"])
    return tweak


def test_steps_take_the_median_run(sweep):
    def run(rep, good, invalid=False):
        return {"config": "s", "phase": "search", "offered_rps": 1000.0, "rep": rep,
                "goodput_rps": good, "lat_p99_ms": 10.0 + rep, "invalid": invalid}

    (s,) = sweep.steps([run(0, 900), run(1, 1100), run(2, 1000)])
    # goodput, p99 and the rest from one run: the one of median goodput
    assert (s["goodput_rps"], s["lat_p99_ms"], s["rep"]) == (1000, 12.0, 2)
    assert (s["goodput_min"], s["goodput_max"], s["valid_runs"], s["runs"]) == (900, 1100, 3, 3)
    (s,) = sweep.steps([run(0, 1100), run(1, 900)])
    assert s["goodput_rps"] == 900  # an even count: the lower middle run
    (s,) = sweep.steps([run(0, 5000, invalid=True), run(1, 900), run(2, 1000)])
    assert not s["invalid"] and s["goodput_rps"] == 900  # INVALID runs left out
    assert (s["goodput_max"], s["valid_runs"], s["runs"]) == (1000, 2, 3)
    (s,) = sweep.steps([run(0, 900, invalid=True), run(1, 800, invalid=True)])
    assert s["invalid"] and s["valid_runs"] == 0


# Capacity 4000 from 1000, 2000, 2200: each step grows, the search goes on
# at 2860, 3718 (the knee) and 4833, where goodput falls to 3310.
class Rising(Args):
    rate_list = [1000.0, 2000.0, 2200.0]


class RisingThree(Rising):
    repeat = 3


@pytest.mark.parametrize("slow_rep", [0, 1, 2])
def test_one_slow_run_does_not_end_the_search_early(sweep, monkeypatch, slow_rep):
    _, _, clean = run_fake(sweep, monkeypatch, {"s": 4000}, args=RisingThree())
    assert clean["s"]["reached"] and clean["s"]["knee_offered"] == pytest.approx(3718)
    # One slow process at 2200: 1540 does not grow over 2000. Its median
    # (2200) does; the mean of the three (1980) would not, nor would the
    # first or the last run (the slow one, for some slow_rep).
    calls, rows, an = run_fake(sweep, monkeypatch, {"s": 4000}, args=RisingThree(),
                               tweak=scaled(2200, slow_rep, 0.7))
    assert an["s"] == clean["s"]
    assert len([r for r in rows if r["offered_rps"] == 2200]) == 3
    # The same slow run with one run per step ends the search at 2000.
    calls, _, one = run_fake(sweep, monkeypatch, {"s": 4000}, args=Rising(),
                             tweak=scaled(2200, 0, 0.7))
    assert one["s"]["reached"] and one["s"]["knee_offered"] == 2000
    assert [r for _, r, p in calls if p == "search"] == [1000, 2000, 2200]


def test_one_fast_run_past_the_knee_does_not_move_it(sweep, monkeypatch):
    # 1.3 x 3310 at 4833 would grow over 3718: one run of three is not the step
    _, _, an = run_fake(sweep, monkeypatch, {"s": 4000}, args=RisingThree(),
                        tweak=scaled(4833, 1, 1.3))
    assert an["s"]["knee_offered"] == pytest.approx(3718)


@pytest.mark.parametrize("bad_rep", [0, 1, 2])
def test_one_collapsed_run_past_the_knee_is_not_a_collapse(sweep, monkeypatch, bad_rep):
    # knee 2000 (goodput 1125); 2 x knee: 562.5, one run of three at a tenth
    calls, rows, an = run_fake(sweep, monkeypatch, {"s": 1500}, args=Three(),
                               tweak=scaled(4000, bad_rep, 0.1, phase="past"))
    assert an["s"]["knee_offered"] == 2000
    assert [r for _, r, p in calls if p == "past"] == [3000] * 3 + [4000] * 3 + [6000] * 3 \
        + [8000] * 3
    two = next(p for p in an["s"]["past"] if p["multiple"] == 2.0)
    assert two["goodput_frac"] == pytest.approx(0.5)
    assert two["sessions_frac"] == pytest.approx(0.5, rel=0.01)
    assert (two["goodput_min"], two["goodput_max"]) == pytest.approx((56.25, 562.5))


def test_a_step_is_invalid_only_when_all_its_runs_are(sweep, monkeypatch):
    # the client cannot keep pace above 2600/s in any run: 3380 is INVALID
    calls, rows, an = run_fake(sweep, monkeypatch, {"s": 1e9}, lag_limit=2600, args=Three())
    assert [r for _, r, _ in calls] == [1000] * 3 + [2000] * 3 + [2600] * 3 + [3380] * 3
    assert not an["s"]["reached"] and an["s"]["invalid_steps"] == 1
    # in one run of three only: the step counts, by its two valid runs

    def one_lags(row, rep, attempt):
        row["invalid"] = round(row["offered_rps"]) == 3380 and rep == 1

    calls, rows, an = run_fake(sweep, monkeypatch, {"s": 4000}, args=Three(), tweak=one_lags)
    assert an["s"]["invalid_steps"] == 0
    assert an["s"]["reached"] and an["s"]["knee_offered"] == pytest.approx(4394)


def test_an_invalid_run_of_a_repeated_step_runs_again(sweep, monkeypatch):
    class Retry(Three):
        retry_invalid = 1

    def lags_once(row, rep, attempt):
        row["invalid"] = round(row["offered_rps"]) == 2000 and rep == 1 and attempt == 1

    discarded = []
    calls, rows, an = run_fake(sweep, monkeypatch, {"s": 1500}, args=Retry(), tweak=lags_once,
                               discarded=discarded)
    assert [r for _, r, p in calls if p == "search"] == [1000] * 3 + [2000] * 4 + [2600] * 3
    assert [r["rep"] for r in rows if r["offered_rps"] == 2000] == [0, 1, 2]
    assert [(r["offered_rps"], r["rep"], r["phase"]) for r in discarded] == \
        [(2000, 1, "discarded")]
    assert an["s"]["reached"] and an["s"]["knee_offered"] == 2000


def test_repeats_interleave_the_servers(sweep, monkeypatch):
    _, rows, an = run_fake(sweep, monkeypatch, {"a": 1500, "b": 1500}, args=Three())
    order = [(r["config"], r["rep"]) for r in rows if r["offered_rps"] == 1000]
    assert order == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    order = [r["config"] for r in rows if r["offered_rps"] == 2000]
    assert order == ["b", "a"] * 3  # the order still rotates from step to step
    assert an["a"]["knee_offered"] == an["b"]["knee_offered"] == 2000


def read_dat(path):
    """plot-steps.dat: the number rows of each index block (NaN: None)."""
    blocks = []
    for block in open(path).read().split("\n\n\n"):
        rows = [[None if x == "NaN" else float(x) for x in ln.split()]
                for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
        if rows:
            blocks.append(rows)
    return blocks


def test_repeated_steps_csv_summary_and_replot(sweep, monkeypatch, tmp_path):
    noise = {0: 1.0, 1: 0.9, 2: 1.05}  # each run its own process speed

    def per_process(row, rep, attempt):
        row["goodput_rps"] *= noise[rep]
        row["lat_p99_ms"] = 10.0 + rep

    discarded = []
    _, rows, _ = run_fake(sweep, monkeypatch, {"s": 1500}, args=Report(), discarded=discarded)
    assert all(r["rep"] == 0 for r in rows)  # --repeat 1: one run per step, as before

    class Rep3(Report):
        repeat = 3

    _, rows, _ = run_fake(sweep, monkeypatch, {"s": 1500}, args=Rep3(), tweak=per_process,
                          discarded=discarded)
    plotted = []
    monkeypatch.setattr(sweep, "plot", lambda args, out, configs, first, name:
                        plotted.append(args.repeat) or [])
    configs = [{"label": "s", "kind": "s"}]
    text, ok, _ = sweep.write_results(Rep3(), configs, str(tmp_path), rows, [], [], discarded)
    assert ok and plotted == [3]

    with open(tmp_path / "steps.csv", newline="") as f:
        csv_rows = list(csv.DictReader(f))
    by_step = {}
    for r in csv_rows:
        by_step.setdefault((r["phase"], float(r["offered_rps"])), []).append(r)
    assert len(by_step) == 3 + 4  # 1000, 2000, 2600 searched; 4 multiples past the knee
    for runs in by_step.values():
        assert [r["rep"] for r in runs] == ["0", "1", "2"]
        (mid,) = [r for r in runs if r["median"] == "True"]
        assert mid["rep"] == "0"  # goodput x 1.0: the middle of 0.9, 1.0, 1.05
    # the table: medians (min-max), and says so
    line = next(ln for ln in text.splitlines() if ln.startswith("s ") and " 1000 " in ln)
    assert "1000 (900-1050)" in line
    assert "the values are medians of those runs" in text
    assert "(statistics over the last 6 s), each run 3 times," in text
    assert "s: knee at 2000 requests/s offered: goodput 1125 (1012-1181)/s, p99 10.0 ms" in text

    # plot data: a line per step, the median with the min and max of its runs
    (block,) = read_dat(tmp_path / "plot-steps.dat")
    cols = sweep.STEP_COLS
    first = dict(zip(cols, block[0]))
    assert (first["offered_rps"], first["goodput_rps"]) == (1000, 1000)
    assert (first["goodput_min"], first["goodput_max"]) == (900, 1050)
    assert len(block) == 7

    # --replot reads the CSVs back and draws the same (with 3 runs per step)
    (tmp_path / "plot-steps.dat").unlink()

    class Again(Report):
        replot = str(tmp_path)

    assert sweep.replot(Again()) == 0
    assert read_dat(tmp_path / "plot-steps.dat") == [block]
    assert plotted == [3, 3]


def test_one_run_per_step_plots_no_error_bars(sweep, monkeypatch, tmp_path):
    _, rows, _ = run_fake(sweep, monkeypatch, {"s": 1500}, args=Report())
    for r in rows:
        r["rep"] = 0
    sweep.write_plot_data(str(tmp_path), [{"label": "s", "kind": "s"}], rows, [], [], 6.0)
    text = (tmp_path / "plot-steps.dat").read_text()
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            assert line.split()[-2:] == ["NaN", "NaN"]
    an = {"s": sweep.analyse(rows)}
    table = sweep.summary_text(Report, [{"label": "s"}], rows, an, "/tmp/x")[0]
    assert "(" not in next(ln for ln in table.splitlines() if ln.startswith("s "))
    assert "medians" not in table


def test_stage_lines_break_between_runs(sweep, tmp_path):
    def sample(t, rep):
        return {"config": "s", "offered_rps": 1000.0, "rep": rep, "t": t, "stage": "reader",
                "depth": 1, "wait_mean_ms": 0.1, "busy": 0.5, "processed_per_s": 10}

    stages = [sample(1, 0), sample(2, 0), sample(3, 1), sample(4, 1)]
    rows = [dict(fake_row({"label": "s", "kind": "sluice"}, 1000.0, "search", None, 1e9),
                 rep=0)]
    sweep.write_plot_data(str(tmp_path), [{"label": "s", "kind": "sluice"}], rows, stages, [],
                          6.0)
    text = (tmp_path / "plot-stages.dat").read_text()
    reader = text.split("# stage reader\n")[1].split("\n\n\n")[0]
    assert reader.split("\n\n") == ["1 1 0.1 0.5 10 1000.0\n2 1 0.1 0.5 10 1000.0",
                                    "3 1 0.1 0.5 10 1000.0\n4 1 0.1 0.5 10 1000.0"]


@pytest.mark.parametrize("value", ["0", "x", "10", "1.5", "-1"])
def test_repeat_must_be_1_to_9(sweep, capsys, value):
    with pytest.raises(SystemExit):
        sweep.parse_args(["--repeat", value])
    err = capsys.readouterr().err
    assert f"--repeat {value!r}: expected a whole number of runs per step from 1 to 9" in err


def test_repeat_defaults_to_one_also_for_quick_and_presets(sweep):
    assert sweep.parse_args([]).repeat == 1
    assert sweep.parse_args(["--quick"]).repeat == 1
    assert sweep.parse_args(["--preset", "cpu"]).repeat == 1
    assert sweep.parse_args(["--preset", "disk", "--repeat", "3"]).repeat == 3
