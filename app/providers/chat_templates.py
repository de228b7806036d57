"""A model's own chat template, without loading the model: read from a model folder
(``tokenizer_config.json`` / ``chat_template.jinja`` + ``tokenizer.json``) or from a GGUF
file's metadata, and rendered with Jinja2 the way transformers and llama.cpp render it.

Token counters use it to count what a server or the model really processes (the template
adds role markers and, for some models, a default system prompt: SmolLM2's adds 16 tokens
to every conversation that has no system message).

``jinja2``, ``tokenizers`` (both come with the local-model extras) are imported on first
use; without them the functions return None and callers estimate.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from app.core.types import ChatMessage

log = logging.getLogger(__name__)

SPECIAL_MARK = re.compile(r"<\|[^|<>\s]{1,40}\|>|</?s>")
"""Special tokens written inline in a rendered prompt (``<|im_start|>``, ``<s>``): one token each."""


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template with the special tokens it is rendered with."""

    source: str
    template: str
    special_tokens: dict[str, str] = field(default_factory=dict)
    """``bos_token``, ``eos_token``, ... as the template sees them."""

    def render(self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True) -> str:
        """The prompt text for ``messages`` (raises ValueError when the template fails)."""
        return render(self.template, messages, add_generation_prompt=add_generation_prompt,
                      special_tokens=self.special_tokens)


@functools.cache
def _compiled(template: str) -> Any:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
               separators: Any = None, sort_keys: bool = False) -> str:  # fmt: skip
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols], undefined=jinja2.Undefined)  # fmt: skip
    env.filters["tojson"] = tojson
    return env.from_string(template)


def render(template: str, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True,
           special_tokens: dict[str, str] | None = None) -> str:  # fmt: skip
    """Render a chat template as transformers' ``apply_chat_template`` and llama.cpp's Jinja
    formatter do (sandboxed, ``trim_blocks`` / ``lstrip_blocks``, ``raise_exception``,
    ``strftime_now``). Raises ValueError when the template cannot be rendered."""
    import datetime as dt

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    def strftime_now(fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
        return dt.datetime.now().strftime(fmt)

    try:
        compiled = _compiled(template)
        return str(compiled.render(
            messages=[{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=add_generation_prompt, raise_exception=raise_exception,
            strftime_now=strftime_now, tools=None, documents=None, **(special_tokens or {}),
        ))  # fmt: skip
    except ImportError:
        raise
    except Exception as exc:  # a template error of any kind: the caller estimates
        raise ValueError(f"the chat template failed: {type(exc).__name__}: {exc}") from exc


# -- model folders -------------------------------------------------------------------------------
def _token_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


def folder_template(folder: str | Path) -> ChatTemplate | None:
    """The chat template of a transformers model folder, or None when it has none."""
    root = Path(folder)
    try:
        config = json.loads((root / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    template: Any = None
    jinja_file = root / "chat_template.jinja"
    if jinja_file.is_file():
        try:
            template = jinja_file.read_text(encoding="utf-8")
        except OSError:
            template = None
    if not template:
        template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        template = next((t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"), None)
    if not isinstance(template, str) or not template.strip():
        return None
    specials: dict[str, str] = {}
    for name in ("bos_token", "eos_token", "unk_token", "pad_token"):
        text = _token_text(config.get(name))
        if text is not None:
            specials[name] = text
    return ChatTemplate(str(root), template, specials)


_folder_tokenizers: dict[str, Any] = {}
_lock = threading.Lock()


def folder_tokenizer(folder: str | Path) -> Any:
    """A ``tokenizers.Tokenizer`` from ``folder/tokenizer.json`` (cached), or None."""
    path = Path(folder) / "tokenizer.json"
    key = str(path)
    with _lock:
        if key in _folder_tokenizers:
            return _folder_tokenizers[key]
        tok = None
        if path.is_file():
            try:
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(key)
            except Exception:  # no tokenizers package, or a file it cannot read
                log.debug("no tokenizer from %s", path, exc_info=True)
        _folder_tokenizers[key] = tok
        return tok


def custom_tokenizer_code(folder: str | Path) -> bool:
    """True when the folder's tokenizer is custom code (``auto_map``): its tokenizer.json may
    then not tokenize as that code does (and the code is never run to find out)."""
    try:
        config = json.loads((Path(folder) / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    auto_map = config.get("auto_map") if isinstance(config, dict) else None
    return isinstance(auto_map, dict) and "AutoTokenizer" in auto_map


def count_in_folder(folder: str | Path, messages: Sequence[ChatMessage]) -> tuple[int, bool] | None:
    """What ``apply_chat_template(messages, tokenize=True, add_generation_prompt=True)`` gives
    for the model in ``folder``, without transformers, and whether that is exact (not for a
    tokenizer made of custom code); None when it cannot tell."""
    template = folder_template(folder)
    tok = folder_tokenizer(folder)
    if template is None or tok is None:
        return None
    try:
        text = template.render(messages)
    except (ValueError, ImportError):
        return None
    return len(tok.encode(text, add_special_tokens=False).ids), not custom_tokenizer_code(folder)


# -- GGUF files ---------------------------------------------------------------------------------
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_WANTED = ("tokenizer.chat_template", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
           "tokenizer.ggml.add_bos_token")  # fmt: skip


def _read(fh: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise ValueError("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _read_str(fh: BinaryIO) -> str:
    n = _read(fh, "<Q")
    if n > 1 << 26:
        raise ValueError("implausible GGUF string length")
    return fh.read(n).decode("utf-8", "replace")


def _skip_value(fh: BinaryIO, kind: int) -> None:
    if kind == _STRING:
        fh.seek(_read(fh, "<Q"), 1)
    elif kind == _ARRAY:
        elem, count = _read(fh, "<I"), _read(fh, "<Q")
        if elem in _SCALARS:
            fh.seek(struct.calcsize(_SCALARS[elem]) * count, 1)
        else:
            for _ in range(count):
                _skip_value(fh, elem)
    elif kind in _SCALARS:
        fh.seek(struct.calcsize(_SCALARS[kind]), 1)
    else:
        raise ValueError(f"unknown GGUF value type {kind}")


def gguf_metadata(path: str | Path) -> dict[str, Any]:
    """The few GGUF metadata values a chat template needs: the template, the BOS / EOS ids and
    the token list (strings). Reads the header only (about 0.1 s for a 49k-token vocabulary;
    the gguf package's reader takes seconds). Raises OSError / ValueError."""
    out: dict[str, Any] = {}
    with open(path, "rb") as fh:
        if fh.read(4) != b"GGUF":
            raise ValueError("not a GGUF file")
        version = _read(fh, "<I")
        if version < 2:
            raise ValueError(f"GGUF version {version} is not supported")
        _read(fh, "<Q")  # tensor count
        for _ in range(_read(fh, "<Q")):
            key = _read_str(fh)
            kind = _read(fh, "<I")
            if key == "tokenizer.ggml.tokens" and kind == _ARRAY:
                elem, count = _read(fh, "<I"), _read(fh, "<Q")
                if elem != _STRING:
                    raise ValueError("GGUF token list is not made of strings")
                out[key] = [_read_str(fh) for _ in range(count)]
            elif key in _WANTED and kind == _STRING:
                out[key] = _read_str(fh)
            elif key in _WANTED and kind in _SCALARS:
                out[key] = _read(fh, _SCALARS[kind])
            else:
                _skip_value(fh, kind)
    return out


@functools.lru_cache(maxsize=16)
def _gguf_template(path: str, _size: int, _mtime: int) -> ChatTemplate | None:
    try:
        meta = gguf_metadata(path)
    except (OSError, ValueError):
        log.debug("no GGUF metadata from %s", path, exc_info=True)
        return None
    template = meta.get("tokenizer.chat_template")
    if not isinstance(template, str) or not template.strip():
        return None
    tokens: list[str] = meta.get("tokenizer.ggml.tokens") or []
    specials: dict[str, str] = {}
    for name, key in (("bos_token", "tokenizer.ggml.bos_token_id"), ("eos_token", "tokenizer.ggml.eos_token_id")):
        idx = meta.get(key)
        if isinstance(idx, int) and 0 <= idx < len(tokens):
            specials[name] = tokens[idx]
    return ChatTemplate(path, template, specials)


def gguf_template(path: str | Path) -> ChatTemplate | None:
    """The chat template stored in a GGUF file (cached by path, size and mtime), or None."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return None
    if not p.is_file():
        return None
    return _gguf_template(str(p.resolve()), st.st_size, st.st_mtime_ns)


def estimate_rendered(text: str) -> int:
    """Tokens of a rendered prompt without the model's tokenizer: each inline special token
    counts one, the rest is counted with tiktoken's cl100k_base (an estimate)."""
    from app.core.tokens import count_text

    specials = SPECIAL_MARK.findall(text)
    return len(specials) + sum(count_text("", part).tokens for part in SPECIAL_MARK.split(text) if part)
