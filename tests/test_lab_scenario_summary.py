"""``mxha lab scenario all``'s summary table (``print_summary``): the writer's columns show its
figures on a --maxscale lab and n/a where no writer ran (the emulator lab has no SQL listener)."""

from __future__ import annotations

import pytest

from mxha.lab.scenarios import Report, print_summary


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
