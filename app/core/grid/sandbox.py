"""Running a grid file's scripts (``javascript`` / ``python`` assertions and transforms)
within bounds: JavaScript in an embedded V8 (mini-racer: no Node, no ``require``, no file or
network access) and Python in a child interpreter (``sys.executable -I``, no site or user
paths) with a CPU-time and address-space limit. Both are given a wall-clock time limit and a
memory limit; a script that throws, loops or runs out of memory raises :class:`ScriptError`
naming what happened and the limit.

Values cross as JSON: a script gets ``output`` and ``context`` and gives back JSON-able data
(a bool, a number, a string, an object).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.errors import AppError

JS_TIMEOUT_S = 5.0
PY_TIMEOUT_S = 10.0
MEMORY_MB = 128
"""The V8 heap a JavaScript script may use."""
PY_ADDRESS_MB = 1024
MAX_RESULT_CHARS = 1_000_000


class ScriptError(AppError):
    """A script threw, ran past its time limit or out of memory (the message says which)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds of one script run."""

    timeout_s: float = JS_TIMEOUT_S
    memory_mb: int = MEMORY_MB


_JS_RUN = """
(function(){
  const __r = (%s);
  if (__r !== null && typeof __r === "object" && typeof __r.then === "function") {
    return __r.then(function(v){ return JSON.stringify(v === undefined ? null : v); });
  }
  return JSON.stringify(__r === undefined ? null : __r);
})()
"""


def _eval_js(call: str, prelude: str, limits: Limits) -> str:
    """The JSON text of ``call`` (after ``prelude``) in a fresh V8 context; raises ScriptError."""
    from py_mini_racer import (
        JSEvalException,
        JSOOMException,
        JSPromise,
        JSPromiseError,
        JSTimeoutException,
        MiniRacer,
    )

    ctx = MiniRacer()
    memory = limits.memory_mb * 1024 * 1024
    try:
        if prelude:
            ctx.eval(prelude, timeout_sec=limits.timeout_s, max_memory=memory)
        result = ctx.eval(_JS_RUN % call, timeout_sec=limits.timeout_s, max_memory=memory)
        if isinstance(result, JSPromise):
            result = result.get(timeout=limits.timeout_s)
        return result if isinstance(result, str) else "null"
    except JSTimeoutException:
        _settle(ctx)
        raise ScriptError(f"the script ran past its time limit of {limits.timeout_s:g} s") from None
    except JSOOMException:
        _settle(ctx)
        raise ScriptError(f"the script ran out of memory (limit {limits.memory_mb} MB)") from None
    except (JSEvalException, JSPromiseError) as exc:
        raise ScriptError(_js_error(str(exc))) from None
    finally:
        ctx.close()


def _settle(ctx: Any) -> None:
    """Let V8 finish a stopped evaluation before the context closes: its late callback
    would otherwise reach a closed event loop (the isolate runs its tasks in order)."""
    try:
        ctx.eval("0", timeout_sec=1.0)
    except Exception:  # a context that cannot even do that is closed anyway
        pass


def _js_error(text: str) -> str:
    """V8's ``<anonymous>:1: Error: boom\\n<source line>...`` as ``threw Error: boom``."""
    text = text.replace("JavaScript rejected promise with reason: ", "<anonymous>:0: ")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for line in lines:
        if line.startswith("<anonymous>:") and ": " in line[12:]:
            return "threw " + line.split(": ", 1)[1].strip()
    return "threw " + (lines[0].strip() if lines else "an error")


async def run_js(call: str, *, prelude: str = "", limits: Limits = Limits()) -> Any:
    """Evaluate ``prelude`` then the expression ``call`` (a promise is awaited) in a fresh V8
    context and give back its value as JSON data (``undefined`` as None). It always runs in a
    child process, killed at the time limit: V8 at its memory limit can abort the process
    that hosts it (seen as a SIGTRAP of the whole test run), and code that runs after its
    evaluation returns (async functions, timers) escapes V8's own time limit."""
    async with _gate():
        text = await _child({"kind": "js", "call": call, "prelude": prelude}, limits)
    if len(text) > MAX_RESULT_CHARS:
        raise ScriptError(f"the script's result is longer than {MAX_RESULT_CHARS:,} characters")
    return json.loads(text)


async def run_python(source: str, function: str, output: Any, context: Any, *, file: str | None = None,
                     limits: Limits = Limits(PY_TIMEOUT_S, PY_ADDRESS_MB)) -> Any:  # fmt: skip
    """Run ``function(output, context)`` from ``source`` in a child Python (its address space
    and CPU time capped) and give back its value as JSON data; killed at the time limit."""
    job = {"kind": "py", "source": source, "function": function, "output": output, "context": context,
           "file": file}  # fmt: skip
    async with _gate():
        text = await _child(job, limits)
    if len(text) > MAX_RESULT_CHARS:
        raise ScriptError(f"the script's result is longer than {MAX_RESULT_CHARS:,} characters")
    return json.loads(text)


REGEX_TIMEOUT_S = 2.0
_REGEX_CALL = "(function(p, s){ const m = new RegExp(p).exec(s); return m === null ? null : m[0]; })(%s, %s)"


def regex_match(pattern: str, text: str, *, timeout_s: float = REGEX_TIMEOUT_S) -> str | None:
    """The first match of JavaScript's ``new RegExp(pattern)`` (no flags, as promptfoo's
    ``regex``) in ``text``, or None; raises ScriptError for a pattern JavaScript rejects or a
    match past ``timeout_s`` (catastrophic backtracking). It runs in this process, in a fresh
    V8 context (a few ms; unlike :func:`run_js` no user code runs: only the RegExp built from
    the pattern's string, with the time and heap limits), so call it off the event loop."""
    call = _REGEX_CALL % (json.dumps(pattern), json.dumps(text))
    found = json.loads(_eval_js(call, "", Limits(timeout_s)))
    return found if isinstance(found, str) else None


IN_PROCESS_REGEX_CHARS = 100_000
"""A pattern plus text longer than this is matched in a child process, as scripts are: a fresh
V8 context's heap stays a few MB below it, far from the limit at which V8 aborts its host."""


def regex_problem(pattern: str) -> str | None:
    """Why JavaScript rejects ``pattern`` as a RegExp (its message), or None when it takes it."""
    if len(pattern) > IN_PROCESS_REGEX_CHARS:
        return f"the pattern is longer than {IN_PROCESS_REGEX_CHARS:,} characters"
    try:
        regex_match(pattern, "")
    except ScriptError as exc:
        return exc.message.removeprefix("threw ")
    return None


async def run_regex(pattern: str, text: str) -> str | None:
    """:func:`regex_match` in a worker thread (a slow pattern never holds up the loop); a long
    text goes to a child process instead (:data:`IN_PROCESS_REGEX_CHARS`)."""
    if len(pattern) + len(text) > IN_PROCESS_REGEX_CHARS:
        found = await run_js(_REGEX_CALL % (json.dumps(pattern), json.dumps(text)), limits=Limits(REGEX_TIMEOUT_S))
        return found if isinstance(found, str) else None
    async with _gate():
        return await asyncio.to_thread(regex_match, pattern, text)


MAX_AT_ONCE = min(4, max(2, os.cpu_count() or 2))
"""Scripts run at once (each a V8 isolate or a child process): a big grid waits its turn."""
_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _gate() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    gate = _GATES.get(loop)
    if gate is None:
        gate = _GATES[loop] = asyncio.Semaphore(MAX_AT_ONCE)
    return gate


_MARK = "\n@@GRID-RESULT@@"
_CHILD = "import json, sys; job = json.load(sys.stdin); sys.path.insert(0, job['root']); " \
         "from app.core.grid.sandbox import child_main; child_main(job)"


async def _child(job: dict[str, Any], limits: Limits) -> str:
    job = {**job, "root": str(Path(__file__).resolve().parents[3]), "timeout": limits.timeout_s,
           "memory": limits.memory_mb}  # fmt: skip
    data = json.dumps(job, default=str).encode()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-c", _CHILD, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(data), limits.timeout_s + 2.0)  # + the child's start
    except TimeoutError:
        raise ScriptError(f"the script ran past its time limit of {limits.timeout_s:g} s") from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode("utf-8", "replace")
    at = text.rfind(_MARK)
    if at < 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()
        why = tail[-1] if tail else f"exit status {proc.returncode}"
        if proc.returncode == -signal.SIGXCPU:
            why = f"it ran past its CPU time limit of {max(1, int(limits.timeout_s + 0.999))} s"
        elif proc.returncode is not None and proc.returncode < 0:
            why = f"killed by signal {-proc.returncode} (over its memory limit?)"
        raise ScriptError(f"the script died: {why}")
    result = json.loads(text[at + len(_MARK):])
    if "error" in result:
        raise ScriptError(str(result["error"]))
    return str(result["ok"])


def child_main(job: dict[str, Any]) -> None:
    """The child process's side of :func:`_child` (prints the marker and a JSON result)."""
    limits = Limits(float(job["timeout"]), int(job["memory"]))
    try:
        if job["kind"] == "js":
            out: dict[str, Any] = {"ok": _eval_js(job["call"], job["prelude"], limits)}
        else:
            out = {"ok": _exec_python(job, limits)}
    except ScriptError as exc:
        out = {"error": exc.message}
    sys.stdout.write(_MARK + json.dumps(out))
    sys.stdout.flush()


def _exec_python(job: dict[str, Any], limits: Limits) -> str:
    import resource

    memory = limits.memory_mb * 1024 * 1024  # address space: the interpreter's own included
    cpu = max(1, int(limits.timeout_s + 0.999))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    file = job.get("file")
    if file:
        sys.path.insert(0, str(Path(file).parent))  # the script's own imports, as promptfoo
    scope: dict[str, Any] = {"__name__": "__grid_script__", "__file__": file or "<grid>"}
    try:
        exec(compile(job["source"], file or "<grid>", "exec"), scope)  # noqa: S102 - the user's own script
        fn = scope.get(job["function"])
        if not callable(fn):
            raise NameError(f"the script defines no function {job['function']}()")
        return json.dumps(fn(job["output"], job["context"]), default=str)
    except MemoryError:
        raise ScriptError(f"the script ran out of memory (limit {memory // 2**20} MB of address space)") from None
    except RecursionError:
        raise ScriptError("threw RecursionError: maximum recursion depth exceeded") from None
    except Exception as exc:
        raise ScriptError(f"threw {type(exc).__name__}: {exc}") from None
