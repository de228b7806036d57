"""Setup step for the bundled model: ``python -m app.providers.bundled_setup prepare``.

Run by scripts/setup.sh and the installer build: it converts the bundled GGUF and writes its
default quantized copy once, so that a fresh profile loads the bundled model in about a second.
Kept apart from :mod:`app.providers.bundled` (constants and look-ups that the loader itself
imports), so that neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

from app.core.errors import ModelNotFound
from app.core.settings import LocalModelSettings
from app.providers.bundled import bundled_gguf_path, default_prebuilt_dir
from app.providers.local_loading import convert_gguf, file_sha256, gguf_cache_dir, pick_dtype
from app.providers.local_quant_cache import load_quantized


def prepare(target: Path | None = None, quantized_only: bool = False) -> Path:
    """Convert the bundled GGUF and write its default quantized copy under ``target`` (once).

    Run by scripts/setup.sh and the installer build, so that a fresh profile loads the
    bundled model in about a second instead of converting it (~20 s) at the first answer.
    ``quantized_only`` drops the float32 weights (540 MB) afterwards: the installer ships
    the default variant only, and other dtypes convert into the user's cache when chosen.
    """
    target = target or default_prebuilt_dir()
    gguf = bundled_gguf_path()
    sha = file_sha256(gguf)
    folder = gguf_cache_dir(target, sha)
    if not (folder / "config.json").is_file():
        convert_gguf(gguf, folder)
    variant = pick_dtype(LocalModelSettings(), "cpu")
    load_quantized(folder, variant, target, sha, False)  # writes quantized-<variant>-v*.safetensors once
    if quantized_only:
        (folder / "model.safetensors").unlink(missing_ok=True)
    for path in (folder.parent, folder, *folder.iterdir()):  # readable by every user of an installed app
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


def _main(argv: list[str] | None = None) -> int:
    """``python -m app.providers.bundled_setup prepare [--target DIR]``."""
    import argparse
    import time

    ap = argparse.ArgumentParser(prog="python -m app.providers.bundled_setup", description=prepare.__doc__)
    ap.add_argument("command", choices=["prepare"])
    ap.add_argument("--target", type=Path, help=f"default: {default_prebuilt_dir()}")
    ap.add_argument("--quantized-only", action="store_true", help="keep only the default quantized copy (installers)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    try:
        folder = prepare(args.target, args.quantized_only)
    except ModelNotFound as exc:
        print(f"bundled model: {exc.user_message()}")
        return 1
    print(f"bundled model ready in {folder} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
