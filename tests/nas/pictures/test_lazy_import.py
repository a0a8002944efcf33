"""matplotlib loads only when a picture is drawn: its first import on a fresh machine builds a
font cache (22 s on the GPU machine of issue 26), which a search's start must not wait for."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _loads_matplotlib(code: str) -> bool:
    result = subprocess.run([sys.executable, "-c", code + "\nimport sys\n"
                             "print('matplotlib' in sys.modules)"],
                            capture_output=True, text=True, cwd=ROOT, check=True)
    return result.stdout.strip().splitlines()[-1] == "True"


def test_the_commands_and_the_picture_package_import_no_matplotlib():
    assert not _loads_matplotlib(
        "import nas.run, nas.cli, nas.cli.search, nas.cli.retrain, nas.search, nas.train, "
        "supernet, nas.pictures, nas.pictures.tensorboard")


def test_drawing_imports_it():  # the control: the lazy names still resolve
    assert _loads_matplotlib("from nas.pictures import cell_figure, draw_run")


def test_search_help_imports_no_matplotlib():
    result = subprocess.run([sys.executable, "-X", "importtime", "search.py", "--help"],
                            capture_output=True, text=True, cwd=ROOT, check=True)
    assert "usage:" in result.stdout
    assert "matplotlib" not in result.stderr  # -X importtime lists every import on stderr
