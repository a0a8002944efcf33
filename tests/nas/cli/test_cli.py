"""The lwnas command: subcommands, the same flags as the scripts, one-line errors."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nas import cli

ROOT = Path(__file__).resolve().parents[3]


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    for name in ("search", "retrain", "predict", "export", "report", "visualize", "complexity", "check",
                 "sample"):
        assert name in printed and name in cli.SUBCOMMANDS


def test_scripts_and_subcommands_take_the_same_flags():
    for script, command in (("search.py", "search"), ("retrain.py", "retrain")):
        as_script = subprocess.run([sys.executable, script, "--help"], cwd=ROOT,
                                   capture_output=True, text=True, check=True).stdout
        options = as_script.split("\noptions:", 1)[1]  # the flag list, not the description
        flags = set(re.findall(r"^\s+(?:-\w, )?(--[\w-]+)", options, flags=re.MULTILINE))
        sub = cli.build_parser()._subparsers._group_actions[0].choices[command]
        assert flags == {flag for action in sub._actions for flag in action.option_strings
                         if flag.startswith("--")}


def test_a_bad_file_is_one_line_naming_it_and_debug_shows_the_traceback(tmp_path,
                                                                         one_line_error):
    genotype = tmp_path / "genotype.json"
    genotype.write_text("{not json")
    line = one_line_error(["retrain", "--genotype", genotype, "--device", "cpu"])
    assert line.startswith(f"error: {genotype}: not valid JSON")
    with pytest.raises(ValueError, match="not valid JSON"):
        cli.main(["retrain", "--genotype", str(genotype), "--device", "cpu", "--debug"])


def test_the_script_prints_one_line_without_a_traceback(tmp_path):
    genotype = tmp_path / "missing.json"
    result = subprocess.run([sys.executable, "retrain.py", "--genotype", str(genotype)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {genotype}: cannot read genotype file (No such file or directory)"]


def test_spatial_dims_is_the_data_option_of_the_search(monkeypatch, capsys):
    import nas.run

    calls = []
    monkeypatch.setattr(nas.run, "search", lambda *args, **kwargs: calls.append(kwargs))
    assert cli.main(["search", "--dataset", "nnunet", "--spatial-dims", "3"]) == 0
    assert calls[-1]["data_options"] == {"spatial_dims": 3}
    assert cli.main(["search", "--dataset", "nnunet", "--option", "spatial_dims=3",
                     "--spatial-dims", "3"]) == 0
    assert calls[-1]["data_options"] == {"spatial_dims": 3}
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["search", "--dataset", "nnunet", "--option", "spatial_dims=2", "--spatial-dims", "3"])
    assert exit_info.value.code == 2
    assert "--spatial-dims 3 and --option spatial_dims=2 disagree" in capsys.readouterr().err


def test_the_search_takes_the_drop_path_of_its_weight_steps(monkeypatch):
    import nas.run

    calls = []
    monkeypatch.setattr(nas.run, "search", lambda *args, **kwargs: calls.append(kwargs))
    assert cli.main(["search", "--dataset", "dsb2018"]) == 0
    assert calls[-1]["drop_path"] is None  # unset: the preset's
    assert cli.main(["search", "--dataset", "dsb2018", "--drop-path", "0"]) == 0
    assert calls[-1]["drop_path"] == 0.0
