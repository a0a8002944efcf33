"""``import data`` needs none of the file formats' packages (SimpleITK, nibabel, pydicom,
albumentations): the GPU image of issue 26 lacks them, and lists the data sets, builds the
commands' flags and runs what reads no such file without them (data.io.lazy)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("SimpleITK", "nibabel", "pydicom", "albumentations")
BLOCK = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
sys.meta_path.insert(0, Block())
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True, cwd=ROOT)


def test_the_data_package_and_the_search_command_import_without_them():
    result = _run("import data, nas.run, nas.cli.search\n"
                  "print(sorted(data.list_datasets()))")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "dsb2018" in result.stdout


def test_a_file_of_theirs_needs_them_then():  # the control: the lazy names still resolve
    result = _run("from data.io.png import read_png\nread_png('x.png')")
    assert result.returncode != 0 and "No module named 'SimpleITK'" in result.stderr
    loaded = subprocess.run([sys.executable, "-c", "import sys, data, numpy\n"
                             "from data.io.png import read_png, write_png\n"
                             "import tempfile, pathlib\n"
                             "path = pathlib.Path(tempfile.mkdtemp()) / 'x.png'\n"
                             "write_png(path, numpy.full((4, 4), 7, numpy.uint8))\n"
                             "print(int(read_png(path).max()), 'SimpleITK' in sys.modules)"],
                            capture_output=True, text=True, cwd=ROOT, check=True)
    assert loaded.stdout.split() == ["7", "True"]
