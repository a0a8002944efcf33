"""`python -m data.check`: summary, every problem listed, exit status."""

from __future__ import annotations

import os
import subprocess
import sys

import data.check
from data.sample.brats import write_brats
from data.sample.chaos import write_chaos


def chaos(tmp_path):
    return write_chaos(tmp_path / "chaos", ct_patients=("1", "2", "5"), mr_patients=(), slices=3, ct_size=16)


def test_clean_data_exits_zero_with_a_summary(tmp_path, capsys):
    assert data.check.main(["--dataset", "chaos", "--data-root", str(chaos(tmp_path))]) == 0
    out = capsys.readouterr().out
    for field in ("cases", "3 readable, 0 with problems", "slices", "9 (per case 3-3)", "shapes", "spacings",
                  "label values", "class balance", "channels"):
        assert field in out


def test_every_bad_case_is_listed_and_the_exit_is_non_zero(tmp_path, capsys):
    root = chaos(tmp_path)
    sorted((root / "Train_Sets/CT/1/Ground").glob("*.png"))[0].unlink()
    broken = sorted((root / "Train_Sets/CT/5/DICOM_anon").glob("*.dcm"))[1]
    broken.write_bytes(b"garbage")
    assert data.check.main(["--dataset", "chaos", "--data-root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "1 readable, 2 with problems" in out and "2 problems:" in out
    assert "3 DICOM files in DICOM_anon/ but 2 mask PNGs" in out
    assert f"{broken}: unreadable or truncated DICOM" in out
    # --skip-bad goes on with the good case and lists the others as skipped.
    assert data.check.main(["--dataset", "chaos", "--data-root", str(root), "--skip-bad"]) == 0
    assert "2 skipped (--skip-bad)" in capsys.readouterr().out


def test_wrong_layout_is_a_problem_not_a_crash(tmp_path, capsys):
    root = write_brats(tmp_path / "brats", cases=1, shape=(8, 8, 8))
    assert data.check.main(["--dataset", "promise12", "--data-root", str(root)]) == 1
    assert "no PROMISE12 cases found; looked for CaseNN.mhd" in capsys.readouterr().out


def test_labels_and_options(tmp_path, capsys):
    root = write_chaos(tmp_path / "chaos", ct_patients=(), mr_patients=("1",), mr_slices=2, mr_size=16)
    assert data.check.main(["--dataset", "chaos", "--data-root", str(root), "--option", "modality=MR",
                            "--option", "sequence=T1DUAL_InPhase", "--per-case"]) == 0
    out = capsys.readouterr().out
    assert "0, 1, 2, 3, 4" in out and "T1DUAL_InPhase" in out


def test_command_line_exit_status(tmp_path):
    root = write_brats(tmp_path / "brats", cases=2, shape=(8, 8, 8))
    (root / "BraTS2021_00002" / "BraTS2021_00002_t2.nii.gz").unlink()
    result = subprocess.run([sys.executable, "-m", "data.check", "--dataset", "brats", "--data-root", str(root)],
                            capture_output=True, text=True, env={**os.environ, "LWNAS_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 1, result.stderr
    assert "BraTS2021_00002: missing modality t2" in result.stdout
