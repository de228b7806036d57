"""Where the app keeps its files (platformdirs), overridable for tests and portable use."""

from __future__ import annotations

import os
from dataclasses import dataclass
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
    """Config, data and cache folders. Created on first use."""

    config_dir: Path
    data_dir: Path
    cache_dir: Path

    @classmethod
    def default(cls) -> AppPaths:
        """platformdirs' user dirs, or ``$LLM_PLAYGROUND_HOME/{config,data,cache}`` when set."""
        home = os.environ.get(HOME_ENV)
        if home:
            root = Path(home)
            return cls(root / "config", root / "data", root / "cache")
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

    @property
    def settings_file(self) -> Path:
        """The settings JSON file."""
        return self.config_dir / "settings.json"

    @property
    def usage_db(self) -> Path:
        """The usage ledger database."""
        return self.data_dir / "usage.sqlite3"

    @property
    def history_db(self) -> Path:
        """The conversation history database."""
        return self.data_dir / "history.sqlite3"

    @property
    def log_file(self) -> Path:
        """The app log (keys redacted)."""
        return self.data_dir / "app.log"
