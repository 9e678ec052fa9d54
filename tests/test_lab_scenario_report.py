"""What a scenario reports, from its samples alone: ``scenario all``'s summary table
(``print_summary``: the writer's columns show its figures on a --maxscale lab and n/a where no writer
ran, the emulator lab having no SQL listener) and primary-unseen's verdict on MaxScale's own
failover (``maxscale_failover``), whose failover branch the stand-in, which never fails over,
cannot reach in the namespace test."""

from __future__ import annotations

import pytest

from mxha.lab.scenarios import Report, Sample, maxscale_failover, print_summary


def rows(capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, str]]:
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    out = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == len(header), line
        out[cells[0]] = dict(zip(header, cells, strict=True))
    return out


def test_the_writers_columns_show_its_figures_and_n_a_without_a_writer(capsys: pytest.CaptureFixture[str]) -> None:
    written = Report("active-dies", passed=True)
    written.figures.update(
        heal_s=1.2, writes_failed=14, longest_write_gap_s=0.93, lost_writes=0, errant_gtids=2, two_active_s=0.0
    )
    emulated = Report("master-passive", passed=True)
    emulated.figures.update(heal_s=2.0)
    print_summary([written, emulated])
    table = rows(capsys)
    assert table["active-dies"]["failed writes"] == "14"
    assert table["active-dies"]["longest write gap (s)"] == "0.93"
    assert table["active-dies"]["lost writes"] == "0"
    assert table["active-dies"]["errant GTIDs"] == "2"
    assert table["active-dies"]["heal (s)"] == "1.20"
    for column in ("failed writes", "longest write gap (s)", "lost writes", "errant GTIDs"):
        assert table["master-passive"][column] == "n/a"


def test_active_hangs_target_is_its_own_bound(capsys: pytest.CaptureFixture[str]) -> None:
    """A heal past the check's bound passes the verdict when no further check run went by; the
    summary's target column says MISSED, and met at or under the bound."""
    missed = Report("active-hangs", passed=True)
    missed.figures.update(heal_s=4.05, bound_s=3.91)
    met = Report("active-hangs", nodes=3, passed=True)
    met.figures.update(heal_s=3.08, bound_s=3.91)
    print_summary([missed, met])
    table = rows(capsys)
    assert table["active-hangs"]["target"] == "heal_s <= 3.91: MISSED"
    assert table["active-hangs (3 nodes)"]["target"] == "heal_s <= 3.91: met"


def sample(t: float, node1: str | None, node2: str | None) -> Sample:
    """The server each node's MaxScale names primary at ``t`` (None: not read)."""
    return Sample(t, {"node1": {"primary": node1}, "node2": {"primary": node2}})


def test_no_failover_counts_the_hooks_lead_against_the_threshold() -> None:
    samples = [sample(t / 10, "server1", None if t == 30 else "server1") for t in range(0, 150)]
    verdict = maxscale_failover(samples, "server1", since=1.0, threshold_at=13.5, t_moved=7.0)
    assert verdict.at is None and verdict.to == () and verdict.ahead == 6.5
    line = verdict.line("server1", 9.0, 12.0)
    assert line.startswith("MaxScale's own failover: none (server1 still the primary")
    assert (
        "the hooks moved the role 6.50s before the soonest it could have started "
        "((failcount - 1) x monitor_interval: 9s) ran out" in line
    )


def test_a_failover_is_the_first_sample_naming_another_primary() -> None:
    # node1's MaxScale fails server1 over to server2 at 8.2 s, before the role moved at 9.0 s;
    # a failover seen before the cut (``since``) is not this scenario's
    samples = [sample(0.5, "server3", "server1")]
    samples += [sample(t / 10, "server2" if t >= 82 else "server1", "server1") for t in range(10, 120)]
    verdict = maxscale_failover(samples, "server1", since=1.0, threshold_at=13.0, t_moved=9.0)
    assert verdict.at == 8.2 and verdict.to == ("server2",) and verdict.ahead == -0.8
    assert verdict.line("server1", 9.0, 12.0) == (
        "MaxScale's own failover: server1 -> server2 at 8.20s; the hooks moved the role 0.80s after it"
    )
    unmoved = maxscale_failover(samples, "server1", since=1.0, threshold_at=13.0, t_moved=None)
    assert unmoved.ahead is None and "the hooks did not move the role" in unmoved.line("server1", 9.0, 12.0)
