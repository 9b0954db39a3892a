"""stats.py and the verdict rule: t quantiles against published tables and an independent integration, Welch's
interval on a worked example, the bootstrap's determinism, and `judge` on each side of its thresholds."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from patchq.benchspec import MetricMissing, parse_metric, read_metric
from patchq.stats import (
    bootstrap_interval,
    difference,
    one_sample_interval,
    summarize,
    t_cdf,
    t_quantile,
    welch_interval,
)
from patchq.trial import Threshold, judge


@pytest.mark.parametrize("df, table", [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (10, 2.228),
                                       (30, 2.042), (120, 1.980), (1e7, 1.960)])
def test_t_quantile_matches_the_printed_table(df, table):
    assert t_quantile(0.975, df) == pytest.approx(table, abs=6e-4)


def _t_density(x: float, df: float) -> float:
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_c - (df + 1) / 2 * math.log1p(x * x / df))


@pytest.mark.parametrize("df", [1.0, 2.7, 5.52, 17.0])
def test_t_quantile_agrees_with_integrating_the_density(df):
    """Independent of the incomplete beta function: Simpson's rule over the density from 0 to the quantile."""
    q = t_quantile(0.975, df)
    steps = 20_000
    h = q / steps
    area = _t_density(0, df) + _t_density(q, df)
    area += sum((4 if i % 2 else 2) * _t_density(i * h, df) for i in range(1, steps))
    assert area * h / 3 == pytest.approx(0.475, abs=1e-7)
    assert t_cdf(-q, df) == pytest.approx(0.025, abs=1e-10)
    assert t_quantile(0.025, df) == pytest.approx(-q)


def test_welch_interval_on_a_worked_example():
    base, cand = summarize([1, 2, 3, 4]), summarize([2, 4, 6, 8, 10])
    assert (base.mean, cand.mean) == (2.5, 6.0)
    assert base.sd == pytest.approx(math.sqrt(5 / 3)) and cand.sd == pytest.approx(math.sqrt(10))
    iv = welch_interval(base, cand)
    se = math.sqrt(5 / 3 / 4 + 10 / 5)
    df = se ** 4 / ((5 / 3 / 4) ** 2 / 3 + (10 / 5) ** 2 / 4)
    assert iv.df == pytest.approx(df) and df == pytest.approx(5.5208, abs=1e-4)
    assert iv.value == 3.5
    assert iv.high - iv.value == pytest.approx(t_quantile(0.975, df) * se)
    p_value = 2 * (1 - t_cdf(3.5 / se, df))          # t = 2.25 on 5.5 df: not significant at 5%, so 0 is inside
    assert 0.05 < p_value < 0.1 and iv.low < 0 < iv.high
    assert difference(base, cand).method == "welch"


def test_constant_sides_give_a_zero_width_interval_and_one_value_gives_none():
    iv = welch_interval(summarize([5, 5, 5]), summarize([7, 7]))
    assert (iv.low, iv.value, iv.high) == (2, 2, 2)
    assert difference(summarize([5]), summarize([6, 7])) is None


def test_bootstrap_is_seeded_by_the_data_and_brackets_the_difference():
    base, cand = summarize([10, 11, 9, 10.5, 9.5]), summarize([14, 15, 13.5, 14.5, 16])
    one, two = bootstrap_interval(base, cand), bootstrap_interval(base, cand)
    assert one == two and one.method == "bootstrap"
    assert one.low < one.value < one.high and one.low > 0
    assert difference(base, cand, "bootstrap").method == "bootstrap"


def test_one_sample_interval_against_a_recorded_value():
    iv = one_sample_interval(summarize([88.5, 89.0, 89.5]), 89.0)
    assert iv.value == pytest.approx(0) and iv.df == 2 and iv.low < 0 < iv.high


def _iv(low, high):
    return welch_interval(summarize([0, 0.0001]), summarize([0, 0.0001])).__class__(
        (low + high) / 2, low, high, "welch", 4.0)


def test_judge_promotes_only_above_the_minimum_effect_and_rejects_below_the_loss():
    assert judge(_iv(1, 3), better="higher", min_effect=0, max_loss=0, candidate_failures=0,
                 candidate_runs=4)[0] == "promote"
    assert judge(_iv(1, 3), better="higher", min_effect=1.5, max_loss=0, candidate_failures=0,
                 candidate_runs=4)[0] == "neutral"
    assert judge(_iv(-3, -0.01), better="higher", min_effect=0, max_loss=0, candidate_failures=0,
                 candidate_runs=4)[0] == "reject"
    assert judge(_iv(-3, -0.01), better="higher", min_effect=0, max_loss=0.5, candidate_failures=0,
                 candidate_runs=4)[0] == "neutral"
    assert judge(_iv(-1, 1), better="higher", min_effect=0, max_loss=0, candidate_failures=0,
                 candidate_runs=4)[0] == "neutral"
    # lower is better (latency): a negative difference is the gain
    assert judge(_iv(-3, -1), better="lower", min_effect=0, max_loss=0, candidate_failures=0,
                 candidate_runs=4)[0] == "promote"
    # one run a side has no interval: never promote on one run; failed candidate runs reject
    verdict, reason = judge(None, better="higher", min_effect=0, max_loss=0, candidate_failures=0, candidate_runs=1)
    assert verdict == "neutral" and "never promote on one run" in reason
    assert judge(_iv(1, 3), better="higher", min_effect=0, max_loss=0, candidate_failures=1,
                 candidate_runs=4)[0] == "reject"


def test_thresholds_take_amounts_or_percentages_of_the_baseline():
    assert Threshold.parse("2%", "--min-effect").absolute(-50.0) == pytest.approx(1.0)
    assert Threshold.parse("0.5", "--min-effect").absolute(1000.0) == 0.5


def test_metric_specs_read_regex_groups_and_json_paths(tmp_path: Path):
    regex = parse_metric(r"tok/s: ([0-9.]+)")
    assert read_metric(regex, "warm tok/s: 1\nfinal tok/s: 88.9\n", "", tmp_path) == 88.9     # the last match
    assert read_metric(regex, "", "tok/s: 3\n", tmp_path) == 3.0                               # stderr too
    stdout_json = parse_metric("json:$.result.runs[1].tps")
    out = 'loading\n{"result": {"runs": [{"tps": 1}, {"tps": 2.5}]}}\n'
    assert read_metric(stdout_json, out, "", tmp_path) == 2.5
    (tmp_path / "r.json").write_text('{"a": {"b c": [0, "7.25"]}}')
    assert read_metric(parse_metric('json:r.json:$.a["b c"][1]'), "", "", tmp_path) == 7.25
    with pytest.raises(MetricMissing, match="no 'x'"):
        read_metric(parse_metric("json:r.json:$.x"), "", "", tmp_path)
    with pytest.raises(MetricMissing, match="not a finite number"):
        read_metric(parse_metric(r"tok/s: (\S+)"), "tok/s: nan\n", "", tmp_path)
    for bad in ("([0-9]+)(x)", "json:$", "json:/etc/passwd:$.a", "([0-9]+"):
        with pytest.raises(ValueError):
            parse_metric(bad)
