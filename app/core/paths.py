"""Where the app keeps its files (platformdirs), overridable for tests and portable use."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

APP_NAME = "llm-playground"
HOME_ENV = "LLM_PLAYGROUND_HOME"
RESOURCES = Path(__file__).resolve().parent.parent.parent / "resources"


def resources_dir() -> Path:
    """The ``resources/`` folder (source tree, installed package or PyInstaller bundle)."""
    import sys

    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return RESOURCES


@dataclass(frozen=True)
class AppPaths:
    """Config, data and cache folders (created on first use) and the files in them."""

    config_dir: Path
    data_dir: Path
    cache_dir: Path
    settings_file: Path = field(init=False)
    usage_db: Path = field(init=False)
    history_db: Path = field(init=False)
    log_file: Path = field(init=False)

    def __post_init__(self) -> None:
        files = {
            "settings_file": self.config_dir / "settings.json",  # the settings (JSON)
            "usage_db": self.data_dir / "usage.sqlite3",  # the usage ledger
            "history_db": self.data_dir / "history.sqlite3",  # the conversations
            "log_file": self.data_dir / "app.log",  # the app log (keys redacted)
        }
        for name, path in files.items():
            object.__setattr__(self, name, path)  # frozen: set once, here

    @classmethod
    def under(cls, root: Path) -> AppPaths:
        """``root/config``, ``root/data`` and ``root/cache`` (a portable home, tests)."""
        return cls(root / "config", root / "data", root / "cache")

    @classmethod
    def default(cls) -> AppPaths:
        """platformdirs' user dirs, or ``$LLM_PLAYGROUND_HOME/{config,data,cache}`` when set."""
        home = os.environ.get(HOME_ENV)
        if home:
            return cls.under(Path(home))
        import platformdirs

        return cls(
            Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
        )

    def ensure(self) -> AppPaths:
        """Create the folders; return self."""
        for d in (self.config_dir, self.data_dir, self.cache_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

