"""PySide6's per-import "does this module use PySide?" check: the same answers, without
inspect reading each source through linecache (40-55 ms of every window start)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import json, linecache, sys
import PySide6.QtCore
from app.ui import pyside_imports

feature = sys.modules[pyside_imports.FEATURE_MODULE]
original = feature._mod_uses_pyside
installed = pyside_imports.install()
sys.path.insert(0, sys.argv[1])
import uses_qt, plain
import app.ui.main_window, app.core.services  # what the window imports after Qt
read = [n for n in ("uses_qt", "plain") if sys.modules[n].__file__ in linecache.cache]
differ = [m.__name__ for m in list(sys.modules.values())
          if m is not None and bool(original(m)) != pyside_imports.uses_pyside(m, original)]
print(json.dumps({
    "installed": installed,
    "flags": [feature.pyside_feature_dict.get(n) for n in ("uses_qt", "plain")],
    "read_by_inspect": read,
    "differ": differ,
}))
"""


def test_the_same_answers_without_inspect(tmp_path: Path) -> None:
    (tmp_path / "uses_qt.py").write_text("def f():\n    from PySide6.QtCore import QTimer\n    return QTimer\n")
    (tmp_path / "plain.py").write_text("X = 1\n")
    out = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["installed"] is True
    assert got["flags"] == [0, -1]  # uses PySide: 0; does not: -1 ("ignore this module")
    assert got["read_by_inspect"] == []
    assert got["differ"] == []  # every module imported: PySide6's own check agrees
