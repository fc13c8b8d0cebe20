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


def test_a_container_that_forbids_sched_idle_still_gets_the_nicer_priority() -> None:
    """lower_priority in its own process (it changes the caller for good): SCHED_IDLE refused,
    as some containers do (root may set it here, so that refusal is simulated), niceness still added."""
    import subprocess
    import sys

    from conftest import REPO

    script = (
        "import os\n"
        "from kiosk.config import TrainingConfig\n"
        "from kiosk.training.process import lower_priority\n"
        "def refuse(*_a):\n"
        "    raise PermissionError(1, 'Operation not permitted')\n"
        "os.sched_setscheduler = refuse\n"
        "before = os.nice(0)\n"
        "lower_priority(TrainingConfig(nice=7, idle_scheduling=True, threads=1))\n"
        "print(os.nice(0) - before, os.environ['OMP_NUM_THREADS'])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["7", "1"]
    assert "could not put the retrain under SCHED_IDLE" in done.stderr
