"""The retrain units (issue 15): verified like the others, limited so a retrain never starves the
door, and running a command the CLI accepts."""

from __future__ import annotations

from pathlib import Path

from conftest import run_kiosk
from test_systemd_units import UNITS, needs_systemd_analyze, parse_unit, runnable_copies, verify

SERVICE, TIMER, SLICE = "kiosk-retrain.service", "kiosk-retrain.timer", "kiosk-training.slice"


@needs_systemd_analyze
def test_retrain_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    units = runnable_copies(tmp_path, [SERVICE])
    for name in (TIMER, SLICE):
        (tmp_path / name).write_text((UNITS / name).read_text())
        units.append(tmp_path / name)
    result = verify(units)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


def test_retrain_runs_low_in_its_own_slice_and_the_timer_starts_it() -> None:
    service = parse_unit(UNITS / SERVICE)
    assert service["Service.Type"] == ["oneshot"]
    assert service["Service.Slice"] == [SLICE]
    assert int(service["Service.Nice"][0]) > 0 and int(service["Service.CPUWeight"][0]) < 100
    assert int(parse_unit(UNITS / SLICE)["Slice.CPUWeight"][0]) < 100  # the default weight is 100
    assert service["Service.User"] == ["kiosk"] and service["Service.ProtectSystem"] == ["strict"]
    timer = parse_unit(UNITS / TIMER)
    assert timer["Timer.OnCalendar"] and timer["Install.WantedBy"] == ["timers.target"]
    assert "Timer.Unit" not in timer  # so it starts the service of its own name, kiosk-retrain.service


def test_retrain_unit_command_is_one_the_cli_accepts(tmp_path: Path) -> None:
    args = parse_unit(UNITS / SERVICE)["Service.ExecStart"][0].split()[1:]
    result = run_kiosk([*args, "--help"], tmp_path / "home", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--if-due" in result.stdout
