"""The systemd units: `systemd-analyze verify` accepts them, and they say what the service needs.

`verify` insists that ExecStart's program exists; the units name the install location
(/opt/kiosk/.venv/bin/kiosk), which this machine does not have, so the units are verified as
copies whose ExecStart runs this interpreter's `-m kiosk` with the same arguments. verify
reports unknown keys and bad values as warnings with exit status 0, so any output fails.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import REPO, run_kiosk

UNITS = REPO / "systemd"
INSTALLED_KIOSK = "/opt/kiosk/.venv/bin/kiosk"
HEADLESS, DISPLAY = "kiosk.service", "kiosk-display.service"

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed on this machine"
)


def parse_unit(path: Path) -> dict[str, list[str]]:
    """'Section.Key' -> every value given (systemd keys such as DeviceAllow= may repeat)."""
    keys: dict[str, list[str]] = defaultdict(list)
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        keys[f"{section}.{key.strip()}"].append(value.strip())
    return keys


def runnable_copies(dest: Path, names: list[str], edits: tuple[tuple[str, str], ...] = ()) -> list[Path]:
    copies = []
    for name in names:
        text = (UNITS / name).read_text()
        assert f"ExecStart={INSTALLED_KIOSK} " in text
        text = text.replace(f"ExecStart={INSTALLED_KIOSK} ", f"ExecStart={sys.executable} -m kiosk ")
        for old, new in edits:
            assert old in text
            text = text.replace(old, new)
        (dest / name).write_text(text)
        copies.append(dest / name)
    return copies


def verify(units: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_systemd_analyze
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    result = verify(runnable_copies(tmp_path, [HEADLESS, DISPLAY]))
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


@needs_systemd_analyze
def test_verify_as_used_here_catches_a_mistake(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key and a bad value are reported (with exit status 0)."""
    edits = (("ProtectSystem=strict", "ProtectSystem=strikt"), ("WatchdogSec=", "WatchdogSecs="))
    result = verify(runnable_copies(tmp_path, [HEADLESS], edits))
    assert "strikt" in result.stderr and "Unknown key 'WatchdogSecs'" in result.stderr


@pytest.mark.parametrize("name", [HEADLESS, DISPLAY])
def test_unit_runs_unattended_and_hardened(name: str) -> None:
    unit = parse_unit(UNITS / name)
    service = {k.removeprefix("Service."): v for k, v in unit.items() if k.startswith("Service.")}
    assert service["Type"] == ["notify"]
    assert float(service["WatchdogSec"][0]) > 0
    assert service["Restart"] == ["on-failure"]
    assert service["User"] == ["kiosk"] and set(service["SupplementaryGroups"][0].split()) >= {"video", "gpio"}
    assert service["StateDirectory"] == ["kiosk"] and "KIOSK_HOME=%S/kiosk" in service["Environment"][0]
    assert service["ProtectSystem"] == ["strict"]
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome"):
        assert service[key] == ["yes"], key
    assert service["DevicePolicy"] == ["closed"]
    assert {"char-video4linux rw", "char-gpiochip rw"} <= set(service["DeviceAllow"])
    assert "PrivateDevices" not in service, "PrivateDevices= hides the camera"
    assert any(v.startswith("-/etc/kiosk/") for v in service["EnvironmentFile"])


def test_display_variant_owns_tty1_and_logs_to_the_journal() -> None:
    unit = parse_unit(UNITS / DISPLAY)
    assert unit["Service.ExecStart"] == [f"{INSTALLED_KIOSK} run --display"]
    assert unit["Service.TTYPath"] == ["/dev/tty1"]
    assert unit["Service.StandardInput"] == ["tty"] and unit["Service.StandardOutput"] == ["tty"]
    assert unit["Service.StandardError"] == ["journal"]
    assert "/dev/tty1 rw" in unit["Service.DeviceAllow"]
    assert HEADLESS in unit["Unit.Conflicts"][0].split() and "getty@tty1.service" in unit["Unit.Conflicts"][0].split()
    assert DISPLAY in parse_unit(UNITS / HEADLESS)["Unit.Conflicts"][0].split()


def test_headless_unit_command_is_one_the_cli_accepts(tmp_path: Path) -> None:
    args = parse_unit(UNITS / HEADLESS)["Service.ExecStart"][0].split()[1:]
    result = run_kiosk([*args, "--help"], tmp_path / "home", timeout=60)
    assert result.returncode == 0, result.stderr
