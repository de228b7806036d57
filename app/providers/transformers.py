"""In-process models with transformers: ``huggingface:<repo id>`` and ``local:<path|smollm2>``.

Both providers share one :class:`~app.providers.worker.ModelWorker` per provider context
(``context.extra["model_worker"]``); it owns the loaded model, tokenizer and LoRA adapters
(:class:`~app.providers.local_runtime.LocalRuntime`). Generation never runs on the asyncio
loop's thread. torch / transformers / peft are imported only when a model is used.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from app.core.errors import AppError, ModelNotFound, ProviderError
from app.core.events import Finished, Progress, StreamEvent, TextDelta, UsageReport
from app.core.provider import ProviderContext
from app.core.types import (
    AdapterInfo,
    ChatMessage,
    GenerationRequest,
    ModelInfo,
    ModelRef,
    TokenCount,
)
from app.providers.bundled import BUNDLED_ALIAS, BUNDLED_DISPLAY_NAME, bundled_status, prebuilt_dirs
from app.providers.local_loading import ModelSource, gguf_cache_dir, resolve_source
from app.providers.worker import LoopSink, ModelWorker, worker_for

if TYPE_CHECKING:  # never imported at runtime (keeps torch out of app start)
    from app.providers.local_generation import CancelFlag, GenStats
    from app.providers.local_runtime import LocalRuntime

log = logging.getLogger(__name__)
T = TypeVar("T")
_DONE = object()
MAX_RECENT = 10


@dataclass(frozen=True)
class _Failure:
    error: BaseException


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, AppError | asyncio.CancelledError):
        return exc
    return ProviderError(f"Local generation failed: {type(exc).__name__}: {exc}", hint="Try again, or load the model again.")


def _on_event_loop() -> bool:
    """True on a thread that is running an asyncio event loop (it must not block)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _LocalBase:
    """What the ``huggingface`` and ``local`` providers share."""

    id = "local"

    def __init__(self, context: ProviderContext) -> None:
        self.context = context
        self.last_stats: GenStats | None = None
        # seconds the model load of the last stream()/load() took; None when it was loaded already
        # (the same figure ends the last Progress: phase "loaded", "... loaded in N s")
        self.last_load_seconds: float | None = None
        self._tokenizers: dict[str, Any] = {}
        self._tokenizer_loads: dict[str, threading.Thread] = {}  # model id -> its copy being loaded
        self._token_dirs: dict[str, str] = {}
        self._flags: set[CancelFlag] = set()

    # --- the worker ---------------------------------------------------------------------
    @property
    def worker(self) -> ModelWorker:
        """The shared model worker of this provider context."""
        return worker_for(self.context.extra, self.context.settings.local.threads)

    def _runtime(self) -> LocalRuntime:
        """The worker's runtime (call on the worker thread only)."""
        from app.providers.local_runtime import RUNTIME_KEY, LocalRuntime

        rt = self.worker.state.get(RUNTIME_KEY)
        if rt is None:
            rt = LocalRuntime(lambda: self.context.settings.local, self.context.paths.cache_dir, self.worker.set_idle)
            self.worker.state[RUNTIME_KEY] = rt
        assert isinstance(rt, LocalRuntime)
        return rt

    async def _on_worker(self, fn: Callable[[LocalRuntime], T]) -> T:
        return await self.worker.submit(lambda: fn(self._runtime()))

    def _collect_garbage(self) -> None:
        """After the worker dropped a model, collect cycles here, on the loop thread."""
        from app.providers.local_runtime import RUNTIME_KEY
        from app.providers.worker import WORKER_KEY

        worker = self.context.extra.get(WORKER_KEY)  # never start a worker just for this
        rt = worker.state.get(RUNTIME_KEY) if isinstance(worker, ModelWorker) else None
        if rt is not None and getattr(rt, "garbage", False):
            rt.garbage = False
            from app.providers.local_loading import collect_garbage

            collect_garbage()

    def _loaded_id(self) -> str | None:
        from app.providers.worker import WORKER_KEY

        worker = self.context.extra.get(WORKER_KEY)
        rt = worker.state.get("runtime") if isinstance(worker, ModelWorker) else None
        return getattr(rt, "loaded_id", None)

    def _source(self, model: str) -> ModelSource:
        return resolve_source(self.id, model)

    # --- explicit model management ----------------------------------------------------
    async def load(self, model: str, on_progress: Callable[[Progress], None] | None = None) -> ModelInfo:
        """Load ``model`` on the worker (unloading the previous one after success)."""
        source = self._source(model)
        loop = asyncio.get_running_loop()

        def progress(phase: str, fraction: float | None, message: str, eta_s: float | None = None, /) -> None:
            if on_progress is not None:
                try:
                    loop.call_soon_threadsafe(on_progress, Progress(phase, fraction, message, eta_s))
                except RuntimeError:
                    pass

        def job(rt: LocalRuntime) -> Any:
            before = rt.loaded
            loaded = rt.load(source, progress)
            return loaded, loaded is not before

        try:
            loaded, fresh = await self._on_worker(job)
        finally:
            self._collect_garbage()
        self.last_load_seconds = loaded.load_seconds if fresh else None
        self._after_load(source, loaded.folder)
        return self.model_info(model)

    async def loaded_model(self) -> str | None:
        """The id of the loaded model (``local:...`` / ``huggingface:...``), or None."""
        return await self._on_worker(lambda rt: rt.loaded_id)

    async def unload(self) -> None:
        """Unload the model and free its memory."""
        await self._on_worker(lambda rt: rt.unload())
        self._collect_garbage()

    async def load_adapter(self, path: str, name: str | None = None) -> AdapterInfo:
        """Validate and load a LoRA adapter onto the loaded model (not activated)."""
        return await self._on_worker(lambda rt: rt.load_adapter(path, name))

    async def unload_adapter(self, name: str) -> None:
        """Delete a loaded adapter."""
        await self._on_worker(lambda rt: rt.unload_adapter(name))

    async def list_adapters(self) -> list[AdapterInfo]:
        """Loaded adapters with scale and active flag."""
        return await self._on_worker(lambda rt: rt.list_adapters())

    async def score(self, request: GenerationRequest, token_ids: Sequence[int]) -> list[float]:
        """Log-probability of each of ``token_ids`` as the continuation of ``request``'s prompt
        (and prefix), with exactly the request's adapters active, in one forward pass."""
        source = self._source(request.model.name)

        def job(rt: LocalRuntime) -> list[float]:
            rt.load(source)
            tools = request.tools if (request.tool_choice or "auto") != "none" else ()
            return rt.score(request.messages, request.prefix, token_ids, request.adapters, tools)

        try:
            return await self._on_worker(job)
        finally:
            self._collect_garbage()

    def _after_load(self, source: ModelSource, folder: str) -> None:
        """Remember where the tokenizer is (for count_tokens) and the recent local models."""
        if folder:
            self._token_dirs[source.model_id] = folder
        if self.id == "local" and source.model_id != f"local:{BUNDLED_ALIAS}":
            recent = self.context.settings.recent_local_models
            if source.model_id in recent:
                recent.remove(source.model_id)
            recent.insert(0, source.model_id)
            del recent[MAX_RECENT:]

    # --- the provider contract ----------------------------------------------------------
    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        """Load the model if needed (yielding Progress), then stream tokens from the worker."""
        from app.providers.local_generation import CancelFlag, GenStats

        request.params.validated()
        source = self._source(request.model.name)
        sink = LoopSink(asyncio.get_running_loop())
        stats = GenStats()
        flag = CancelFlag(stats)
        self.last_stats = stats
        self._flags.add(flag)

        folder: list[str] = []
        self.last_load_seconds = None

        def job() -> None:
            try:
                if flag.is_set():
                    return
                rt = self._runtime()
                before = rt.loaded
                loaded = rt.load(source, lambda p, f, m, eta=None, /: sink.put(Progress(p, f, m, eta)))
                folder.append(loaded.folder)
                if loaded is not before:
                    self.last_load_seconds = loaded.load_seconds
                rt.apply_request_adapters(request.adapters)
                if flag.is_set():  # stopped while loading: no prefill, the worker is free at once
                    sink.put(Finished("cancelled"))
                    return
                plan = rt.plan(request)  # a request the model cannot serve fails here, before generating
                emit: Callable[..., None] = lambda text, tokens=(): sink.put(TextDelta(text, tokens))  # noqa: E731
                parser = None
                if plan.syntax is not None:
                    from app.providers.local_tools import ToolCallParser, calls_in

                    parser = ToolCallParser(plan.syntax, sink.put, calls_in(request.messages), request.prefix)
                    emit = parser.feed
                prompt, completion, reason = rt.generate(request.messages, request.params, emit, flag,
                                                         request.prefix, plan)  # fmt: skip
                if parser is not None:
                    parser.finish()
                    if parser.calls and reason == "stop":
                        reason = "tool_calls"
                sink.put(UsageReport(prompt, completion, stats.cached_tokens))
                sink.put(Finished(reason))
            except BaseException as exc:  # delivered to the consumer
                sink.put(_Failure(exc))
            finally:
                sink.put(_DONE)

        self.worker.submit(job)
        finished = False
        loaded_before = self._loaded_id()
        try:
            while True:
                item = await sink.queue.get()
                if item is _DONE:
                    finished = True
                    break
                if isinstance(item, _Failure):
                    finished = True
                    error = _translate(item.error)
                    if error is item.error:
                        raise error
                    raise error from item.error
                yield item
        finally:
            self._flags.discard(flag)
            if not finished:
                flag.set()
            self._collect_garbage()
        if folder and (loaded_before != source.model_id or source.model_id not in self._token_dirs):
            self._after_load(source, folder[0])

    def count_tokens(self, model: str, messages: list[ChatMessage]) -> TokenCount:
        """Exact count with the model's tokenizer and chat template, else a labelled estimate."""
        tok = self._tokenizer_for(model)
        if tok is not None:
            from app.providers.local_prompt import prompt_ids

            return TokenCount(len(prompt_ids(tok, messages)), exact=True, method=f"tokenizer:{model}")
        return self._count_from_files(model, messages)

    def _count_from_files(self, model: str, messages: list[ChatMessage]) -> TokenCount:
        """Before the model is loaded: its chat template and tokenizer.json read from disk
        (exact), else a GGUF file's own template rendered and estimated, else ~4 chars/token."""
        from app.providers import chat_templates

        try:
            source: ModelSource | None = self._source(model)
        except AppError:
            source = None
        if source is not None:
            folder = self._folder_on_disk(source)
            if folder is not None:
                counted = chat_templates.count_in_folder(folder, messages)
                if counted is not None:
                    n, exact = counted
                    return TokenCount(n, exact=exact, method="tokenizer.json + chat template"
                                      + ("" if exact else " (estimate: the tokenizer is custom code)"))
            template = chat_templates.gguf_template(source.location) if source.kind == "gguf" else None
            if template is not None:
                try:
                    n = chat_templates.estimate_rendered(template.render(messages))
                except (ValueError, ImportError):
                    pass
                else:
                    return TokenCount(n, exact=False, method="estimate (the model's chat template, cl100k)")
        chars = sum(len(m.content) for m in messages)
        return TokenCount(chars // 4 + 4 * len(messages), exact=False, method="estimate (4 chars per token)")

    def _folder_on_disk(self, source: ModelSource) -> str | None:
        """The model's tokenizer folder when it is on disk already (no download, no
        conversion, no hashing): the loaded one, a model folder, the Hub cache, or a GGUF's
        converted copy."""
        known = self._token_dirs.get(source.model_id)
        if known is not None:
            return known
        if source.kind == "folder":
            return source.location
        if source.kind == "hub":
            try:
                from huggingface_hub import try_to_load_from_cache

                found = try_to_load_from_cache(source.location, "tokenizer.json")
            except Exception:  # no hub package, or a bad repo id
                return None
            return str(Path(found).parent) if isinstance(found, str) else None
        return _converted_gguf_folder(Path(source.location), self.context.paths.cache_dir)

    def _tokenizer_for(self, model: str) -> Any:
        """A private tokenizer copy (not the worker's), loaded only when that is cheap. A
        thread that runs an event loop (a run's live figures, a served request, the grid's
        estimates) never loads it: the copy is then made on a thread of its own, and the
        caller gets None (it counts from the files) until it is ready: 200-350 ms for
        SmolLM2's, which stalled a stream in its middle."""
        try:
            source = self._source(model)
        except AppError:
            return None
        key = source.model_id
        if key in self._tokenizers:
            return self._tokenizers[key]
        if key in self._tokenizer_loads:  # being made on its own thread
            return None
        location = self._token_dirs.get(key)
        if location is None and source.kind == "folder":
            location = source.location
        if location is None and source.kind == "hub" and "transformers" in sys.modules:
            from app.providers.local_hub import hub_cached

            location = source.location if hub_cached(source.location) else None
        if location is None or "transformers" not in sys.modules:
            return None  # not loaded yet: importing transformers here would stall the caller
        if _on_event_loop():
            thread = threading.Thread(target=self._load_tokenizer, args=(source, location), name="tokenizer-copy",
                                      daemon=True)  # fmt: skip
            self._tokenizer_loads[key] = thread
            thread.start()
            return None
        return self._load_tokenizer(source, location)

    def _load_tokenizer(self, source: ModelSource, location: str) -> Any:
        try:
            from transformers import AutoTokenizer

            trusted = self.context.settings.local.trust_remote_code
            trust = source.model_id in trusted or source.location in trusted  # as when loading: off by default
            # an explicit False also stops transformers from asking on stdin (15 s on this thread)
            tok = AutoTokenizer.from_pretrained(location, local_files_only=True, trust_remote_code=trust)
        except Exception:  # an estimate is better than an error here
            log.debug("no tokenizer for %s", source.model_id, exc_info=True)
            tok = None
        if tok is not None:
            self._tokenizers[source.model_id] = tok
        self._tokenizer_loads.pop(source.model_id, None)
        return tok

    def supports_tools(self, model: str) -> bool | None:
        """Whether ``model``'s chat template has tool support in a call format this app parses
        (read from the loaded tokenizer, else from the files on disk; None: not known yet)."""
        from app.providers.local_tools import template_text, tool_syntax

        try:
            source = self._source(model)
        except AppError:
            return None
        template: str | None = None
        if self._loaded_id() == source.model_id:
            worker = self.context.extra.get("model_worker")
            loaded = getattr(worker.state.get("runtime"), "loaded", None) if isinstance(worker, ModelWorker) else None
            template = template_text(getattr(loaded, "tokenizer", None))
        else:
            from app.providers import chat_templates

            folder = self._folder_on_disk(source)
            found = chat_templates.folder_template(folder) if folder is not None else None
            if found is None and source.kind == "gguf":
                found = chat_templates.gguf_template(source.location)
            if found is None:
                return None
            template = found.template
        return tool_syntax(template) is not None

    def model_info(self, model: str) -> ModelInfo:
        """Static info; ``context_length`` is known once the model is loaded."""
        source = self._source(model)
        ref = ModelRef(self.id, model)
        loaded = self._loaded_id() == source.model_id
        rt_ctx = None
        if loaded:
            worker = self.context.extra.get("model_worker")
            rt_ctx = getattr(worker.state.get("runtime"), "context_length", None) if isinstance(worker, ModelWorker) else None
        display = BUNDLED_DISPLAY_NAME if source.model_id == f"local:{BUNDLED_ALIAS}" else source.display_name
        return ModelInfo(
            ref=ref, display_name=display, context_length=rt_ctx, is_local=True, supports_adapters=True,
            state="ready" if loaded else "available", description=source.location, tokenizer=f"{source.kind} tokenizer",
            supports_tools=self.supports_tools(model), fast_path=self._fast_path(source, loaded),
        )

    def _fast_path(self, source: ModelSource, loaded: bool) -> str | None:
        """Why ``source`` runs on transformers' generate, not the lean CPU step (see ModelInfo.fast_path):
        the loaded model's reason, else what the settings or the config on disk say."""
        from app.providers.local_arch import folder_reason
        from app.providers.local_loading import QUANT_VARIANTS

        if loaded:
            worker = self.context.extra.get("model_worker")
            current = getattr(worker.state.get("runtime"), "loaded", None) if isinstance(worker, ModelWorker) else None
            if current is not None:
                fast = current.fast
                reason = getattr(fast, "lora_reason", None)
                return current.fast_reason if fast is None else (f"adapters: {reason}" if reason else None)
        local = self.context.settings.local
        if local.device not in ("auto", "cpu"):
            return f"device {local.device} (the fast path runs on the CPU)"
        if local.dtype not in ("auto", *QUANT_VARIANTS):
            return f"dtype {local.dtype} (the fast path runs int8/int4 weights)"
        folder = self._folder_on_disk(source)
        return folder_reason(folder) if folder is not None else None

    async def aclose(self) -> None:
        """Stop the shared worker (unloading the model); another provider starts a new one."""
        from app.providers.worker import WORKER_KEY

        for flag in list(self._flags):  # stop running generations so the worker can exit
            flag.set()
        worker = self.context.extra.pop(WORKER_KEY, None)
        if isinstance(worker, ModelWorker):
            try:
                await asyncio.to_thread(worker.close)
            except RuntimeError:  # the interpreter is exiting (no executor threads): here then
                worker.close()


class LocalProvider(_LocalBase):
    """``local:<folder | file.gguf | smollm2>``."""

    id = "local"

    async def list_models(self) -> list[ModelInfo]:
        """The bundled model plus recently used local models."""
        ok, reason = bundled_status()
        if ok:
            models = [self.model_info(BUNDLED_ALIAS)]
        else:
            models = [ModelInfo(ModelRef("local", BUNDLED_ALIAS), BUNDLED_DISPLAY_NAME, is_local=True,
                                supports_adapters=True, state="unavailable", description=reason)]
        for mid in self.context.settings.recent_local_models:
            name = mid.split(":", 1)[1] if mid.startswith("local:") else mid
            try:
                models.append(self.model_info(name))
            except AppError as exc:
                models.append(ModelInfo(ModelRef("local", name), Path(name).name, is_local=True,
                                        supports_adapters=True, state="unavailable", description=exc.message))
        return models


class HuggingFaceProvider(_LocalBase):
    """``huggingface:<repo id>`` from the Hugging Face Hub cache."""

    id = "huggingface"

    async def list_models(self) -> list[ModelInfo]:
        """Text-generation models found in the Hub cache."""
        repos = await asyncio.to_thread(_cached_causal_lms)
        return [self.model_info(r) for r in repos]


def _converted_gguf_folder(gguf: Path, cache_root: Path) -> str | None:
    """The safetensors copy of ``gguf`` made by an earlier load or prebuilt at setup (the
    bundled model's), found through the hash index the load keeps (None when this file was
    never loaded: hashing it here would be slow)."""
    try:
        st = gguf.stat()
        index = json.loads((cache_root / "gguf" / "index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    sha = index.get(f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}") if isinstance(index, dict) else None
    if not isinstance(sha, str):
        return None
    for root in (*prebuilt_dirs(), cache_root):  # where gguf_folder looks, in its order
        folder = gguf_cache_dir(root, sha)
        if (folder / "tokenizer.json").is_file():
            return str(folder)
    return None


def _cached_causal_lms() -> list[str]:
    try:
        from huggingface_hub import constants, scan_cache_dir

        info = scan_cache_dir(constants.HF_HUB_CACHE)  # read now: HF_HUB_CACHE may change
    except Exception:  # no cache yet
        return []
    found = []
    for repo in info.repos:
        if repo.repo_type != "model" or not repo.revisions:
            continue
        rev = max(repo.revisions, key=lambda r: r.last_modified)
        cfg = next((f.file_path for f in rev.files if f.file_name == "config.json"), None)
        if cfg is None:
            continue
        try:
            archs = json.loads(Path(cfg).read_text(encoding="utf-8")).get("architectures") or []
        except (OSError, ValueError):
            continue
        if any(str(a).endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
            found.append(repo.repo_id)
    return sorted(found)


__all__ = ["HuggingFaceProvider", "LocalProvider", "ModelNotFound", "gguf_cache_dir"]
