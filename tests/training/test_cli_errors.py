"""User mistakes end with one line on stderr and exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.training.conftest import write_csv, write_folders
from training.__main__ import main


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_missing_directory(capsys, tmp_path):
    line = _one_line_error(capsys, ["train", "--data", str(tmp_path / "missing"), "--run-dir",
                                    str(tmp_path / "run")])
    assert "dataset directory not found" in line


def test_empty_class(capsys, tmp_path, faces):
    write_folders(tmp_path / "d", *faces)
    (tmp_path / "d" / "surprise").mkdir(exist_ok=True)
    for f in (tmp_path / "d" / "surprise").iterdir():
        f.unlink()
    line = _one_line_error(capsys, ["train", "--data", str(tmp_path / "d"), "--run-dir",
                                    str(tmp_path / "run")])
    assert "has no images" in line


def test_wrong_csv_columns_and_pixel_count(capsys, tmp_path, faces):
    bad = write_csv(tmp_path / "bad.csv", *faces, header="label,pixels,Usage")
    assert "missing CSV column" in _one_line_error(capsys, ["train", "--data", str(bad)])
    short = tmp_path / "short.csv"
    short.write_text("emotion,pixels\n1," + " ".join(["0"] * 100) + "\n")
    assert "expected 2304" in _one_line_error(capsys, ["train", "--data", str(short)])


def test_unknown_model_name(capsys, tmp_path, faces):
    write_folders(tmp_path / "d", *faces)
    line = _one_line_error(capsys, ["train", "--data", str(tmp_path / "d"), "--model", "vgg99",
                                    "--run-dir", str(tmp_path / "run")])
    assert "unknown model 'vgg99'" in line and "moodnet" in line


def test_missing_model_file_for_evaluate_and_export(capsys, tmp_path):
    assert "model not found" in _one_line_error(
        capsys, ["evaluate", "--model", str(tmp_path / "x.keras"), "--data", str(tmp_path)])
    assert "model not found" in _one_line_error(capsys, ["export", "--run", str(tmp_path / "run")])


@pytest.mark.slow
def test_subprocess_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "training", "evaluate", "--model",
                           str(tmp_path / "none.keras"), "--data", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: model not found: {tmp_path / 'none.keras'}"
