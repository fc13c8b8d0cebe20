"""Configuration: file, environment, defaults, and one clear line for every mistake."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from conftest import DEV, run_kiosk

from kiosk.config import Settings, load_settings, require_file
from kiosk.errors import ConfigError


def test_environment_overrides_file_which_overrides_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text('door = "back"\n[detection]\ninput_size = 320\nscore_threshold = 0.6\n')
    monkeypatch.setenv("KIOSK_DETECTION__SCORE_THRESHOLD", "0.7")
    monkeypatch.setenv("KIOSK_HOME", str(tmp_path / "h"))
    s = load_settings(cfg)
    assert (s.door, s.detection.input_size, s.detection.score_threshold) == ("back", 320, 0.7)
    assert s.home == tmp_path / "h"
    assert s.recognition.threshold == 0.80
    assert s.models.detector == tmp_path / "h" / "models" / "scrfd_500m_bnkps.onnx"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("[detection]\nscore_treshold = 0.5\n", {}, "unknown key 'detection.score_treshold'"),
        ("[detection]\ninput_size = 'big'\n", {}, "'detection.input_size'"),
        ("", {"KIOSK_RECOGNITION__THRESHOLD": "1.5"}, "'recognition.threshold'"),
        ("", {"KIOSK_RECOGNITION__BOGUS": "1"}, "unknown key 'recognition.bogus'"),
        ("[nosuch]\nx = 1\n", {}, "unknown key 'nosuch'"),
        ("door = \n", {}, "not valid TOML"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, env: dict[str, str], expected: str) -> None:
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(text)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    assert expected in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_model_file_names_key_and_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'models.detector'.*/nowhere/det.onnx"):
        require_file("models.detector", Path("/nowhere/det.onnx"))


def test_cli_reports_config_errors_without_traceback(tmp_path: Path) -> None:
    proc = run_kiosk(["identities"], tmp_path / "home", KIOSK_DETECTION__INPUT_SIZE="huge")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: config: 'detection.input_size' (or KIOSK_DETECTION__INPUT_SIZE): "
        "Input should be a valid integer, unable to parse string as an integer (got 'huge')"
    ]


def test_cli_missing_model_file_is_one_line(tmp_path: Path) -> None:
    proc = run_kiosk(["enroll", "Ada", str(tmp_path)], tmp_path / "home", KIOSK_MODELS__DETECTOR="/nowhere/scrfd.onnx")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "error: config: 'models.detector' names a file that does not exist: /nowhere/scrfd.onnx "
        "(set 'models.detector' in the config file or KIOSK_MODELS__DETECTOR; README.md, \"Models and licences\", lists the models)"
    )


def test_config_show_prints_valid_toml_of_what_is_in_force(tmp_path: Path) -> None:
    proc = run_kiosk(["config", "show"], tmp_path / "home", KIOSK_RECOGNITION__THRESHOLD="0.9", KIOSK_DOOR="lab")
    assert proc.returncode == 0, proc.stderr
    shown = tomllib.loads(proc.stdout)
    assert shown["recognition"]["threshold"] == 0.9
    assert shown["door"] == "lab"
    assert shown["home"] == str(tmp_path / "home")
    # every key is documented: a comment line precedes each assignment
    lines = proc.stdout.splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[i - 1].startswith("#"), line


def test_a_bad_config_file_does_not_poison_later_settings(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("door = \n")
    for missing_or_bad in (bad, tmp_path / "missing.toml"):
        with pytest.raises(ConfigError):
            load_settings(missing_or_bad)
        assert Settings(home=tmp_path).door == "front"  # what make_settings and the service do


# --- hardening (issue 13): bad environment and data directory, one line each ------------------------


def test_a_list_key_from_the_environment_not_written_as_json_is_one_line(tmp_path: Path) -> None:
    proc = run_kiosk(["identities"], tmp_path / "home", KIOSK_MODELS__ONNX_PROVIDERS="CUDAExecutionProvider")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: config: KIOSK_MODELS__ONNX_PROVIDERS must be written as JSON, "
        """e.g. KIOSK_MODELS__ONNX_PROVIDERS='["CUDAExecutionProvider"]' (got 'CUDAExecutionProvider')"""
    ]


def test_a_provider_this_machine_lacks_falls_back_to_the_cpu_with_one_warning(tmp_path: Path) -> None:
    proc = run_kiosk(["enroll", "Ada", str(DEV / "Naomi_Watts" / "1.jpg")], tmp_path / "home",
                     KIOSK_MODELS__ONNX_PROVIDERS='["NoSuchExecutionProvider"]')
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "lacks NoSuchExecutionProvider; using ['CPUExecutionProvider']" in proc.stderr


@pytest.mark.parametrize("where", ["file", "uncreatable"])
def test_a_data_directory_that_cannot_be_one_is_one_line(tmp_path: Path, where: str) -> None:
    home = tmp_path / "a-file"
    home.write_text("not a folder\n")
    if where == "uncreatable":
        home = home / "home"  # below a file: no user, root included, can create it
    proc = run_kiosk(["identities"], home)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    expected = "is a file, not a folder" if where == "file" else "cannot be created or used: Not a directory"
    assert proc.stderr.strip().splitlines() == [f"error: config: the data directory (home, KIOSK_HOME) {home} {expected}"]
