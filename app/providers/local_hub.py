"""The Hugging Face Hub side of in-process models: ids, the cache, a fast reachability
probe and downloads with byte progress. huggingface_hub is imported inside the functions."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from app.core.errors import ModelNotFound

log = logging.getLogger(__name__)


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils._validators import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ModelNotFound(
            f"'{repo_id}' is not a valid Hugging Face model id.",
            hint="Write it as owner/name, e.g. huggingface:HuggingFaceTB/SmolLM2-135M-Instruct.",
        ) from exc


def hub_offline() -> bool:
    """True when the Hugging Face Hub must not be contacted (HF_HUB_OFFLINE)."""
    from huggingface_hub import constants

    return bool(getattr(constants, "HF_HUB_OFFLINE", False)) or os.environ.get(
        "HF_HUB_OFFLINE", ""
    ).lower() in ("1", "true", "yes", "on")


def hub_cached(repo_id: str) -> bool:
    """True when the Hub cache holds ``config.json`` of ``repo_id``."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json")
    return isinstance(found, str)


HUB_PROBE_TIMEOUT = 10.0
_NETWORK_ERRORS = {"TransportError", "TimeoutException", "NetworkError", "ConnectError", "ConnectionError"}


def check_hub_reachable(repo_id: str) -> None:
    """Ask the Hub about ``repo_id`` once, quickly, before a download.

    Without this, a machine without network (and without HF_HUB_OFFLINE) waits through
    huggingface_hub's five retries with backoff (~50 s) before any error. Unknown, private
    and gated repositories also get a plain error at once. Other answers (a server error,
    a mirror without the API) fall through to the download, which reports its own errors.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    try:
        HfApi().model_info(repo_id, timeout=HUB_PROBE_TIMEOUT)
    except GatedRepoError as exc:
        raise ModelNotFound(
            f"The model '{repo_id}' is gated on the Hugging Face Hub.",
            hint=f"Accept its terms on https://huggingface.co/{repo_id}, log in with: hf auth login, "
            f"then download it with: hf download {repo_id}",
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelNotFound(
            f"There is no model '{repo_id}' on the Hugging Face Hub (or it is private).",
            hint="Check the spelling (owner/name). For a private model log in first with: hf auth login",
        ) from exc
    except Exception as exc:
        names = {cls.__name__ for cls in type(exc).__mro__}
        network = bool(names & _NETWORK_ERRORS) or isinstance(exc, OSError | TimeoutError)
        if isinstance(exc, HfHubHTTPError) or not network:  # the Hub answered (e.g. 5xx)
            log.debug("Hub probe of %s failed; trying the download anyway", repo_id, exc_info=True)
            return
        raise ModelNotFound(
            f"The model '{repo_id}' is not downloaded and the Hugging Face Hub cannot be reached ({exc}).",
            hint=f"Check the internet connection, or download it on a connected machine with: hf download {repo_id}",
        ) from exc


# what a causal LM needs from a repository (never the other formats' weights)
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.py", "*.jinja"]


def download_snapshot(repo_id: str, report: Callable[[float, float], None] | None, local_only: bool) -> Path:
    """The local folder of ``repo_id`` (downloading it when needed), reporting (bytes done, bytes known)."""
    from huggingface_hub import snapshot_download

    from app.providers.local_progress import download_tqdm

    tqdm_class = None if report is None or local_only else download_tqdm(report)
    folder = snapshot_download(repo_id, allow_patterns=DOWNLOAD_PATTERNS, local_files_only=local_only, tqdm_class=tqdm_class)
    return Path(str(folder))

