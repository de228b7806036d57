"""The state that lives on the model worker thread: one loaded model, its adapters.

Every method runs on the worker thread (the providers submit jobs that call them).
Reading :attr:`LocalRuntime.loaded_id` / :attr:`LocalRuntime.context_length` from
another thread is safe (plain attribute reads). After an answer, with prefix reuse on, the
runtime hands the worker an idle warm-up (:mod:`app.providers.local_warmup`) through ``idle``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.errors import AdapterError
from app.core.settings import LocalModelSettings
from app.core.tools import ToolSpec
from app.core.types import AdapterSpec, ChatMessage, GenerationParams, GenerationRequest
from app.providers.local_generation import CancelFlag, Emit, generate
from app.providers.local_loading import (
    LoadedModel,
    ModelSource,
    free_memory,
    load_model,
    pick_device,
    pick_dtype,
)
from app.providers.local_prefix_cache import MB, PrefixCache
from app.providers.local_progress import ProgressFn
from app.providers.local_prompt import prompt_ids
from app.providers.lora import AdapterInfo, AdapterSet
from app.providers.worker import IdleTask

if TYPE_CHECKING:
    from app.providers.local_constrain import LocalPlan

log = logging.getLogger(__name__)

RUNTIME_KEY = "runtime"


class LocalRuntime:
    """One loaded model (with tokenizer and adapters) owned by the model worker."""

    def __init__(self, settings: Callable[[], LocalModelSettings], cache_root: Path,
                 idle: Callable[[IdleTask | None], None] | None = None) -> None:  # fmt: skip
        self._settings = settings
        self._idle = idle  # the worker's set_idle (None: no warm-up)
        self.warmup: IdleTask | None = None  # the last answer's idle warm-up
        self.cache_root = cache_root
        self.loaded: LoadedModel | None = None
        self.adapters: AdapterSet | None = None
        self.loaded_id: str | None = None
        self.context_length: int | None = None
        self.threads: int | None = None
        self.tuner: Any = None
        self.garbage = False  # set when a model was dropped; collected on the loop thread
        self.prefix_cache = PrefixCache(self._cache_limits)  # of the loaded model (cleared with it)

    @property
    def settings(self) -> LocalModelSettings:
        """The current local-model settings (read on every use, so changes apply)."""
        return self._settings()

    def load(self, source: ModelSource, progress: ProgressFn | None = None) -> LoadedModel:
        """Load ``source`` unless it is already loaded; the old model is freed after success."""
        if self.loaded is not None and self.loaded.source.model_id == source.model_id:
            device = pick_device(self.settings)
            if (self.loaded.device, self.loaded.requested_dtype or self.loaded.dtype) == (device, pick_dtype(self.settings, device)):
                return self.loaded
        if not self.settings.threads:  # the tuner's first look at the other load spans this load, not 0 s
            self._tuner()
        new = load_model(source, self.settings, self.cache_root, progress)  # raises: old stays
        self.unload()
        self.loaded = new
        self.adapters = AdapterSet(new.model, _model_hint(new))
        self.loaded_id = source.model_id
        self.context_length = new.context_length
        return new

    def unload(self) -> None:
        """Drop the model and its adapters and free their memory."""
        device = self.loaded.device if self.loaded is not None else None
        dropped = self.loaded is not None
        self._warm(None)
        self.loaded = None
        self.adapters = None
        self.prefix_cache.clear()
        self.loaded_id = None
        self.context_length = None
        if dropped:  # the provider runs collect_garbage() on the loop thread; a first load drops nothing (a
            self.garbage = True  # full collection on the loop thread stalls the first answer's decode 0.2-0.4 s)
        free_memory(device)

    def _require(self) -> tuple[LoadedModel, AdapterSet]:
        if self.loaded is None or self.adapters is None:
            raise AdapterError("No local model is loaded.", hint="Load a local or huggingface model first.")
        return self.loaded, self.adapters

    def _require_float(self) -> AdapterSet:
        return self._require()[1]

    def _cache_limits(self) -> tuple[int, int]:
        s = self.settings
        return s.prefix_cache_entries, s.prefix_cache_mb * MB

    def kv_key(self) -> tuple[Any, ...]:
        """Everything the KV of a token sequence depends on for the loaded model: the model,
        its variant, dtype and device, its RoPE settings, and the active adapters (file hash,
        rank, alpha, targets, scale): the prefix cache's key."""
        loaded = self._require()[0]
        cfg = loaded.model.config
        rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None)
        adapters = tuple(sorted((i.path, i.sha256, i.rank, i.alpha, i.target_modules, i.scale)
                                for i in self.list_adapters() if i.active))  # fmt: skip
        return (loaded.source.model_id, loaded.source.location, loaded.dtype, loaded.device, repr(rope),
                getattr(cfg, "rope_theta", None), adapters)  # fmt: skip

    def _adapters_changed(self) -> None:
        """Let the lean decode step pick up the new adapter state now (part of the switch);
        the warm-up of rows computed under the old state stops."""
        self._warm(None)
        if self.loaded is not None and self.loaded.fast is not None:
            self.loaded.fast.refresh_lora()
            self.loaded.fast.kv_key = self.kv_key()

    def load_adapter(self, path: str, name: str | None = None) -> AdapterInfo:
        """Validate and load an adapter onto the loaded model (inactive until activated)."""
        info = self._require_float().load(path, name)
        self._adapters_changed()
        return info

    def unload_adapter(self, name: str) -> None:
        """Delete one loaded adapter."""
        self._require()[1].unload(name)
        self._adapters_changed()

    def list_adapters(self) -> list[AdapterInfo]:
        """The loaded adapters (empty when no model is loaded)."""
        return [] if self.adapters is None else self.adapters.infos()

    def apply_request_adapters(self, specs: Sequence[AdapterSpec]) -> None:
        """Make exactly the request's adapters active (loading by path once, then cached)."""
        if not specs:
            if self.adapters is not None and self.adapters.active:
                self.adapters.set_active({})
                self._adapters_changed()
            return
        adapters = self._require_float()
        weights: dict[str, float] = {}
        for spec in specs:
            name = adapters.find(spec.path)
            if name is None:
                name = adapters.load(spec.path, spec.name if spec.name and spec.name not in {i.name for i in adapters.infos()} else None).name
            weights[name] = weights.get(name, 0.0) + spec.scale
        if weights != adapters.active:
            adapters.set_active(weights)
        self._adapters_changed()

    def plan(self, request: GenerationRequest) -> LocalPlan:
        """What ``request`` asks beyond text (tools, a schema) for the loaded model; raises
        :class:`~app.core.errors.InvalidParams` before anything is generated when the model's
        chat template has no tool support."""
        from app.providers.local_constrain import plan_for

        return plan_for(request, self._require()[0].tokenizer)

    def generate(
        self, messages: Sequence[ChatMessage], params: GenerationParams, emit: Emit, flag: CancelFlag,
        prefix: str = "", plan: LocalPlan | None = None,
    ) -> tuple[int, int, str]:
        """Generate with the loaded model (continuing ``prefix``, the answer's given start;
        held to ``plan``'s grammar and offering its tools); return (prompt tokens, completion
        tokens, reason)."""
        loaded = self._require()[0]
        tools = plan.tools if plan is not None else ()
        constraint = self._constraint(loaded, plan, prefix)
        fast = loaded.fast
        if fast is not None and fast.ready:
            from app.providers.local_fast_generate import fast_generate

            tuner = None if self.settings.threads else self._tuner()
            if tuner is None:
                self._set_threads()
            fast.kv_key = self.kv_key()
            result = fast_generate(fast, loaded.tokenizer, messages, params, emit, flag, loaded.context_length,
                                   _eos_ids(loaded), tuner, prefix, tools, constraint, self.prefix_cache)
            self._warm_up(loaded, flag.stats.sequence, None)
            return result
        if fast is not None:
            log.info("adapters the lean step cannot run (%s): using transformers' generate", fast.lora_reason)
        self._set_threads()
        key = ("generate", *self.kv_key())
        result = generate(loaded.model, loaded.tokenizer, messages, params, emit, flag, loaded.context_length, prefix,
                          tools, constraint, self.prefix_cache, key)
        self._warm_up(loaded, flag.stats.sequence, key)
        return result

    def _warm_up(self, loaded: LoadedModel, ids: Sequence[int], key: Any) -> None:
        """After an answer (``ids``: its prompt and tokens), let the worker prefill its rows
        exactly while idle: on the lean step (``key`` None), or into the kept entry ``key``."""
        from app.providers.local_warmup import DynamicWarmUp, FastWarmUp

        if self._idle is None or not self.prefix_cache.enabled or not ids:
            return self._warm(None)
        state = self.kv_key()

        def valid() -> bool:  # the same model, adapters and scales as the answer's
            return self.loaded is loaded and self.kv_key() == state

        if key is None:
            return self._warm(FastWarmUp(loaded.fast, ids, valid))
        entry, n = self.prefix_cache.best(key, ids)
        self._warm(DynamicWarmUp(loaded.model, self.prefix_cache, entry, ids, valid)
                   if entry is not None and n == len(entry.ids) else None)  # fmt: skip

    def _warm(self, task: IdleTask | None) -> None:
        self.warmup = task
        if self._idle is not None:
            self._idle(task)

    @staticmethod
    def _constraint(loaded: LoadedModel, plan: LocalPlan | None, prefix: str) -> Any:
        """The grammar of ``plan`` over the loaded model's vocabulary (None: unconstrained)."""
        if plan is None or plan.grammar is None:
            return None
        from app.providers.local_constrain import Constraint

        tok = loaded.tokenizer
        constraint = Constraint(tok, plan.grammar, int(getattr(loaded.model.config, "vocab_size", 0) or len(tok)),
                                sorted(_eos_ids(loaded)))
        if prefix:
            constraint.start(list(tok(prefix, add_special_tokens=False)["input_ids"]))
        return constraint

    def score(self, messages: Sequence[ChatMessage], prefix: str, token_ids: Sequence[int],
              adapters: Sequence[AdapterSpec], tools: Sequence[ToolSpec] = ()) -> list[float]:
        """Log-probabilities of ``token_ids`` after the prompt (offering ``tools``), with exactly
        ``adapters`` active."""
        loaded = self._require()[0]
        self.apply_request_adapters(adapters)
        self._set_threads()
        from app.providers.local_lens import score_tokens

        fast = loaded.fast if loaded.fast is not None and loaded.fast.ready else None
        return score_tokens(loaded.model, loaded.tokenizer, messages, prefix, token_ids, fast, tools)

    def _tuner(self) -> Any:
        """The thread tuner of this runtime (measures what is free, per generation)."""
        from app.providers.local_threads import ThreadTuner

        if self.tuner is None:
            self.tuner = ThreadTuner()
        self.threads = None  # the tuner sets torch's threads itself
        return self.tuner

    def count(self, messages: Sequence[ChatMessage]) -> int:
        """Exact prompt tokens of ``messages`` with the loaded tokenizer's chat template."""
        loaded = self._require()[0]
        return len(prompt_ids(loaded.tokenizer, messages))

    def _set_threads(self) -> None:
        if self.loaded is None or self.loaded.device != "cpu":
            return
        from app.providers.worker import default_threads

        want = default_threads(self.settings.threads)
        if want != self.threads:
            import torch

            torch.set_num_threads(want)
            self.threads = want


def _eos_ids(loaded: LoadedModel) -> set[int]:
    eos = loaded.model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    if loaded.tokenizer.eos_token_id is not None:
        ids.add(loaded.tokenizer.eos_token_id)
    return {int(i) for i in ids}


def _model_hint(loaded: LoadedModel) -> str:
    """The name adapters' base_model_name_or_path is compared with."""
    src = loaded.source
    name: Any = getattr(loaded.model.config, "_name_or_path", "") or ""
    return src.location if src.kind == "hub" else (src.display_name or str(name))
