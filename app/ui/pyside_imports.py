"""Keep PySide6's per-import source scan cheap.

Once ``PySide6.QtCore`` is imported, PySide6 looks at every module imported after it to learn
whether the module uses PySide (for its opt-in ``from __feature__ import snake_case``): it reads
the module's whole source with :func:`inspect.getsource` and looks for ``"PySide6"`` in it.
Through inspect (linecache, tokenize's encoding detection, ``inspect.getmodule`` walking
``sys.modules`` each time) that costs 40-55 ms of CPU over the ~330 modules the window imports
after Qt (pydantic, keyring, the app's own). :func:`install` gives PySide6 the same answer for
modules loaded from a ``.py`` file by reading the file's bytes; other modules still go through
PySide6's own check.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

FEATURE_MODULE = "shibokensupport.feature"


def uses_pyside(module: ModuleType, fallback: Any = None) -> bool:
    """True when the source file of ``module`` mentions ``PySide6`` (what PySide6 asks);
    ``fallback(module)`` answers for modules without a readable ``.py`` file."""
    path = getattr(module, "__file__", None)
    if isinstance(path, str) and path.endswith(".py"):
        try:
            with open(path, "rb") as f:
                return b"PySide6" in f.read()
        except OSError:
            pass
    return bool(fallback(module)) if fallback is not None else False


def install() -> bool:
    """Answer PySide6's per-import question cheaply (after ``PySide6.QtCore`` is imported);
    False when this PySide6 has no such check (nothing is changed then)."""
    feature = sys.modules.get(FEATURE_MODULE)
    original = getattr(feature, "_mod_uses_pyside", None)
    if feature is None or not callable(original):
        return False
    if getattr(original, "__module__", None) == __name__:
        return True  # already installed

    def _mod_uses_pyside(module: ModuleType) -> bool:
        return uses_pyside(module, original)

    _mod_uses_pyside.__module__ = __name__
    feature._mod_uses_pyside = _mod_uses_pyside  # type: ignore[attr-defined]
    return True
