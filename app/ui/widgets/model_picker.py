"""The model picker: an editable dropdown grouped by provider and endpoint, with each
model's state ("not loaded", "loading 45%", "ready" only once really loaded), every
endpoint with its own state ("unreachable: connection refused"), the current model marked,
a typed model id accepted (with completion of ``huggingface:<repo>``, ``mock:...`` and
paths), plus "Add endpoint..." and "Open model file/folder..." entries.

Signals:
    model_selected(str model_id, object endpoint): the user chose or typed a model.
    add_endpoint_requested()
    open_model_requested()
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QStringListModel, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QComboBox, QCompleter, QLineEdit, QWidget

from app.core.errors import AppError
from app.core.registry import provider_spec, providers
from app.core.settings import DEFAULT_ENDPOINT_NAME
from app.core.types import ModelInfo, ModelRef
from app.ui.widgets.common import ElidedLabel

if TYPE_CHECKING:
    from app.core.endpoint_status import EndpointState
    from app.core.events import Progress
    from app.core.services import ModelListing

ROLE_ID = Qt.ItemDataRole.UserRole + 1
ROLE_ENDPOINT = Qt.ItemDataRole.UserRole + 2
ROLE_KIND = Qt.ItemDataRole.UserRole + 3
ADD_ENDPOINT = "__add_endpoint__"
OPEN_MODEL = "__open_model__"
CURRENT_MARK = "\u2713 "
STATE_LABELS = {
    "ready": "ready",
    "available": "",
    "needs_key": "needs key",
    "not_downloaded": "not downloaded",
    "not_loaded": "not loaded",
    "loading": "loading\u2026",
    "unavailable": "unavailable",
}
MAX_COMPLETIONS = 60
POPUP_MAX_WIDTH = 560


def group_order() -> tuple[str, ...]:
    """The groups' order: the registry's, an endpoints provider's named endpoints right
    after its default one (OpenAI, endpoints, Hugging Face, Local files, Mock)."""
    order: list[str] = []
    for spec in providers():
        order.append(spec.group or spec.id)
        if spec.caps.endpoints:
            order.append("endpoints")
    return tuple(order)


def typed_hints() -> tuple[str, ...]:
    """What the picker offers while typing: every provider's hints, by provider id."""
    return tuple(h for spec in sorted(providers(), key=lambda s: s.id) for h in spec.hints)


def tools_note(info: ModelInfo) -> str:
    """A tooltip line on tool calling: known for in-process models (their chat template)."""
    supports = getattr(info, "supports_tools", None)  # a placeholder row (a typed id) does not know
    if supports is None:
        return ""
    if supports:
        return "\nTools: its chat template supports function calling."
    return "\nTools: its chat template has no tool support (a send with tools is refused)."


def group_of(info: ModelInfo) -> str:
    """The group title of a ModelInfo: OpenAI, the endpoint's name, Hugging Face, ..."""
    spec = provider_spec(info.ref.provider)
    if spec is not None and spec.caps.endpoints:
        return endpoint_group(info.endpoint)
    return (spec.group if spec is not None else "") or info.ref.provider


def endpoint_group(endpoint: str | None) -> str:
    """The group title of an endpoint's models (the default endpoint's is its name)."""
    ep = endpoint or DEFAULT_ENDPOINT_NAME
    return DEFAULT_ENDPOINT_NAME if ep.lower() == DEFAULT_ENDPOINT_NAME.lower() else f"Endpoint: {ep}"


def _group_rank(title: str) -> tuple[int, str]:
    order = group_order()
    if title.startswith("Endpoint: "):
        return order.index("endpoints"), title
    return (order.index(title) if title in order else len(order)), title


def normalise_typed(text: str) -> str:
    """A typed model id as the app names it: a bare path becomes ``local:<path>``, ``hf:`` is
    ``huggingface:``; surrounding spaces and quotes go."""
    value = text.strip().strip("'\"").strip()
    if value.startswith(("/", "~", "./", "../")) or (len(value) > 2 and value[1] == ":" and value[2] in "\\/"):
        return f"local:{value}"
    if value.lower().startswith("hf:"):
        return "huggingface:" + value[3:]
    return value


def path_completions(typed: str, limit: int = MAX_COMPLETIONS) -> list[str]:
    """``local:<path>`` completions of a partly typed path: folders (with a trailing ``/``)
    and .gguf files in the folder typed so far."""
    prefix = "local:" if typed.startswith("local:") else ""
    raw = typed[len(prefix):]
    if not raw:
        return []
    expanded = os.path.expanduser(raw)
    folder, _, stem = expanded.rpartition(os.sep)
    base = Path(folder or os.sep)
    typed_folder = raw[: len(raw) - len(stem)]
    try:
        entries = sorted(base.iterdir(), key=lambda p: p.name.lower())
    except OSError:
        return []
    out = []
    for entry in entries:
        if not entry.name.lower().startswith(stem.lower()) or (entry.name.startswith(".") and not stem.startswith(".")):
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if is_dir or entry.suffix.lower() == ".gguf":
            out.append(f"local:{typed_folder}{entry.name}{'/' if is_dir else ''}")
        if len(out) >= limit:
            break
    return out


class ModelPicker(QComboBox):
    """Grouped, editable model dropdown (see the module doc for the signals).
    :attr:`state_label` shows the current model's state; the window puts it beside the picker."""

    model_selected = Signal(str, object)
    add_endpoint_requested = Signal()
    open_model_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelPicker")
        self.setEditable(True)
        self.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(22)
        self.setMaxVisibleItems(24)
        self.setToolTip("Pick a model, or type one: huggingface:<repo id>, local:<folder or .gguf>, "
                        "mock:echo, openai:<model> (Enter to use it)")  # fmt: skip
        self._model = QStandardItemModel(self)
        self.setModel(self._model)
        self._completions = QStringListModel(self)
        completer = QCompleter(self._completions, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        completer.setMaxVisibleItems(12)
        self.setCompleter(completer)
        completer.activated.connect(self._on_completer_activated)
        edit = self._edit()
        edit.setPlaceholderText("provider:model")
        edit.textEdited.connect(self._on_text_edited)
        edit.returnPressed.connect(self._on_return_pressed)
        self.state_label = ElidedLabel("", min_width=40)
        self.state_label.setObjectName("modelState")
        self._infos: dict[tuple[str, str | None], Any] = {}
        self._states: dict[str, str] = {}
        self._fractions: dict[str, float | None] = {}
        self._loaded: str | None = None
        self._errors: dict[str, str] = {}
        self._endpoints: dict[str, EndpointState] = {}
        self._current: tuple[str, str | None] = ("", None)
        self._requested: tuple[str, str | None] | None = None
        self._building = False
        self.activated.connect(self._on_activated)
        self._rebuild()

    def _edit(self) -> QLineEdit:
        edit = self.lineEdit()
        assert edit is not None  # editable: always has one
        return edit

    # -- data -----------------------------------------------------------------------------------
    def set_listing(self, listing: ModelListing) -> None:
        """Show a ModelListing (models, per-provider errors, endpoint states)."""
        self._infos = {(str(m.ref), m.endpoint): m for m in listing.models}
        self._errors = dict(listing.errors)
        self._endpoints = dict(getattr(listing, "endpoints", {}) or {})
        for (mid, _ep), info in self._infos.items():  # a listing saying "ready" for an in-process model is its load
            if info.state == "ready" and _in_process(mid) and mid not in self._states:
                self._loaded = mid
        self._rebuild()

    def set_current(self, model_id: str, endpoint: str | None = None) -> None:
        """Select ``model_id`` (added to the list when unknown)."""
        self._current = (model_id, endpoint)
        self._requested = None
        self._rebuild()

    def set_state(self, model_id: str, state: str | None) -> None:
        """Override a model's shown state (e.g. loading, ready); None clears the override."""
        if state is None:
            self._states.pop(model_id, None)
            self._fractions.pop(model_id, None)
        else:
            self._states[model_id] = state
        if state == "ready" and _in_process(model_id):
            self.mark_loaded(model_id)
            return
        self._rebuild()

    def set_loading(self, model_id: str, progress: Progress) -> None:
        """``model_id`` is loading: "loading 45%" (from ``progress.fraction``)."""
        self._states[model_id] = "loading"
        self._fractions[model_id] = progress.fraction
        self._rebuild()

    def mark_loaded(self, model_id: str) -> None:
        """``model_id`` is loaded (the model worker holds one model: any other is not)."""
        self._loaded = model_id
        for mid in [m for m, st in self._states.items() if st in ("ready", "loading") and _in_process(m)]:
            del self._states[mid]
        self._fractions.pop(model_id, None)
        self._rebuild()

    def current_model(self) -> str:
        """The selected model id."""
        return self._current[0]

    def state_of(self, model_id: str, endpoint: str | None = None) -> str:
        """The state shown for a model ("ready", "not loaded", "loading 45%", "needs key", ...)."""
        info = self._infos.get((model_id, endpoint)) or next(
            (i for (m, _e), i in self._infos.items() if m == model_id), None)
        return self._state_text(model_id, info.state if info is not None else "available",
                                endpoint if info is None else info.endpoint)

    def endpoint_state(self, name: str) -> str:
        """The state shown for an endpoint ('' when it is not listed)."""
        st = self._endpoints.get(name)
        return st.text if st is not None else ""

    def model_ids(self) -> list[str]:
        """Every selectable model id, in order."""
        out = []
        for row in range(self._model.rowCount()):
            item = self._model.item(row)
            if item.data(ROLE_KIND) == "model":
                out.append(item.data(ROLE_ID))
        return out

    def row_texts(self) -> list[str]:
        """The text of every row, as shown in the dropdown."""
        return [self._model.item(row).text() for row in range(self._model.rowCount())]

    def completions(self) -> list[str]:
        """What the completer offers for the text typed now."""
        return self._completions.stringList()

    def select_model(self, model_id: str, endpoint: str | None = None) -> bool:
        """Choose a model as if the user picked it; False when it is not listed."""
        for row in range(self._model.rowCount()):
            item = self._model.item(row)
            if item.data(ROLE_KIND) == "model" and item.data(ROLE_ID) == model_id and (
                endpoint is None or item.data(ROLE_ENDPOINT) == endpoint
            ):
                self.setCurrentIndex(row)
                self._on_activated(row)
                return True
        return False

    def type_model(self, text: str) -> bool:
        """Accept a typed model id as the user does (text, then Enter); False when it is not
        a valid id (the field then says what is wrong in its tooltip)."""
        self._edit().setText(text)
        return self._accept_typed(text)

    # -- building -------------------------------------------------------------------------------
    def _state_text(self, mid: str, listed: str, endpoint: str | None) -> str:
        state = self._states.get(mid, listed)
        if _in_process(mid):
            if state == "loading":
                fraction = self._fractions.get(mid)
                return f"loading {fraction * 100:.0f}%" if fraction is not None else "loading\u2026"
            if state in ("unavailable", "not_downloaded"):
                return STATE_LABELS[state]
            return "ready" if mid == self._loaded else "not loaded"
        if state == "available" and (mid, endpoint) == self._current:
            state = "ready"
        return STATE_LABELS.get(state, state)

    def _label(self, info: ModelInfo) -> str:
        mid = str(info.ref)
        suffix = self._state_text(mid, info.state, info.endpoint)
        current = (mid, info.endpoint) == self._current or (mid == self._current[0] and self._current[1] is None)
        mark = CURRENT_MARK if current else "   "
        return f"{mark}{info.display_name}" + (f"   \u2014   {suffix}" if suffix else "")

    def _rebuild(self) -> None:
        edit = self._edit()
        typing = edit.hasFocus() and edit.isModified()
        typed, cursor = (edit.text(), edit.cursorPosition()) if typing else ("", 0)
        self._building = True
        try:
            self._model.clear()
            infos = dict(self._infos)
            cur_id, cur_ep = self._current
            if cur_id and not any(k[0] == cur_id and (cur_ep is None or k[1] == cur_ep) for k in infos):
                infos[(cur_id, cur_ep)] = _Placeholder(cur_id, cur_ep)
            groups: dict[str, list[ModelInfo]] = {}
            for info in infos.values():
                groups.setdefault(group_of(info), []).append(info)
            for name in self._endpoints:  # every endpoint, with or without models
                groups.setdefault(endpoint_group(name), [])
            select_row = -1
            for title in sorted(groups, key=_group_rank):
                self._add_header(title)
                for info in sorted(groups[title], key=lambda i: i.display_name.lower()):
                    item = QStandardItem(self._label(info))
                    item.setData(str(info.ref), ROLE_ID)
                    item.setData(info.endpoint, ROLE_ENDPOINT)
                    item.setData("model", ROLE_KIND)
                    item.setToolTip(f"{info.ref}" + (f" @ {info.endpoint}" if info.endpoint else "")
                                    + (f"\n{info.description}" if info.description else "") + tools_note(info)
                                    + (f"\nSlower path: {info.fast_path}" if info.fast_path else ""))
                    if str(info.ref) == cur_id and (cur_ep is None or info.endpoint == cur_ep) and select_row < 0:
                        font = QFont(self.font())
                        font.setBold(True)
                        item.setFont(font)
                        select_row = self._model.rowCount()
                    self._model.appendRow(item)
                state = self._endpoints.get(title.removeprefix("Endpoint: ")) if title.startswith("Endpoint: ") \
                    else (self._endpoints.get("OpenAI") if title == "OpenAI" else None)  # fmt: skip
                if state is not None and not state.ok:
                    self._add_note(f"      \u26a0 {state.text}", state.detail)
                elif state is not None and not groups[title]:
                    self._add_note(f"      {state.text}", state.detail)
            for provider, error in sorted(self._errors.items()):
                self._add_note(f"   \u26a0 {provider}: {error[:80]}", error)
            self.insertSeparator(self._model.rowCount())
            for text, kind in (("Add endpoint\u2026", ADD_ENDPOINT), ("Open model file/folder\u2026", OPEN_MODEL)):
                item = QStandardItem(text)
                item.setData(kind, ROLE_KIND)
                self._model.appendRow(item)
            if select_row >= 0:
                self.setCurrentIndex(select_row)
            widest = max((self.fontMetrics().horizontalAdvance(t) for t in self.row_texts()), default=0)
            self.view().setMinimumWidth(min(POPUP_MAX_WIDTH, widest + 48))  # the popup may be wider than the field
        finally:
            self._building = False
        if typing:
            edit.setText(typed)
            edit.setCursorPosition(cursor)
        else:
            self._show_current()
        self._update_completions(typed if typing else "")

    def _show_current_later(self) -> None:
        """After Qt's own handling of Enter or a click (which puts the row's text in the field)."""
        QTimer.singleShot(0, self, lambda: None if self._edit().isModified() else self._show_current())

    def _show_current(self) -> None:
        """The field shows the current model's id; the state label its state."""
        mid, ep = self._current
        edit = self._edit()
        edit.setText(mid)
        edit.setModified(False)
        info = self._infos.get((mid, ep)) or next((i for (m, _e), i in self._infos.items() if m == mid), None)
        note = tools_note(info) if isinstance(info, ModelInfo) else ""
        edit.setToolTip(f"{mid}" + (f" @ {ep}" if ep else "") + note + "\nType another id and press Enter to switch.")
        state = self.state_of(mid, ep) if mid else ""
        self.state_label.setText(state)
        self.state_label.setToolTip(note.strip())

    def _add_header(self, title: str) -> None:
        item = QStandardItem(title)
        font = QFont(self.font())
        font.setBold(True)
        item.setFont(font)
        item.setFlags(Qt.ItemFlag.NoItemFlags)
        item.setData("header", ROLE_KIND)
        self._model.appendRow(item)

    def _add_note(self, text: str, tooltip: str) -> None:
        item = QStandardItem(text)
        item.setToolTip(tooltip)
        item.setFlags(Qt.ItemFlag.NoItemFlags)
        item.setData("note", ROLE_KIND)
        self._model.appendRow(item)

    # -- typing ---------------------------------------------------------------------------------
    def _known_ids(self) -> list[str]:
        ids = list(dict.fromkeys(k[0] for k in self._infos))
        return ids + [h for h in typed_hints() if h not in ids]

    def _update_completions(self, typed: str) -> None:
        text = typed.strip()
        if text.startswith(("local:/", "local:~", "local:.", "/", "~", "./")):
            candidates = path_completions(normalise_typed(text))
        else:
            candidates = self._known_ids()
        self._completions.setStringList(candidates[:MAX_COMPLETIONS])

    def _on_text_edited(self, text: str) -> None:
        self._update_completions(text)

    def _on_completer_activated(self, text: str) -> None:
        if text.endswith("/") or text in ("huggingface:", "local:", "openai:", "mock:fixed?text="):
            return  # a folder or a prefix: keep typing
        self._accept_typed(text)

    def _on_return_pressed(self) -> None:
        self._accept_typed(self._edit().text())

    def _accept_typed(self, text: str) -> bool:
        for row in range(self._model.rowCount()):  # a row's own text (Qt puts it in the field on Enter)
            item = self._model.item(row)
            if item.data(ROLE_KIND) == "model" and item.text().strip() == text.strip():
                return self._choose(item.data(ROLE_ID), item.data(ROLE_ENDPOINT))
        model_id = normalise_typed(text)
        edit = self._edit()
        try:
            ref = ModelRef.parse(model_id)
        except AppError as exc:
            edit.setToolTip(exc.user_message())
            self.state_label.setText("not a model id")
            self.state_label.setToolTip(exc.user_message())
            return False
        model_id = str(ref)
        listed = [k for k in self._infos if k[0] == model_id]
        endpoint = self._current[1] if model_id == self._current[0] else (listed[0][1] if listed else None)
        return self._choose(model_id, endpoint)

    def _choose(self, model_id: str, endpoint: str | None) -> bool:
        self._edit().setModified(False)
        if (model_id, endpoint) not in (self._current, self._requested):  # Enter and the completer both say it
            self._requested = (model_id, endpoint)
            self.model_selected.emit(model_id, endpoint)
        self._show_current()
        self._show_current_later()
        return True

    def _on_activated(self, row: int) -> None:
        if self._building or row < 0:
            return
        item = self._model.item(row)
        kind = item.data(ROLE_KIND) if item is not None else None
        if kind == "model":
            mid, ep = item.data(ROLE_ID), item.data(ROLE_ENDPOINT)
            if (mid, ep) != self._current:
                self.model_selected.emit(mid, ep)
            self._show_current()
            self._show_current_later()
            return
        self._rebuild()  # back to the current model
        if kind == ADD_ENDPOINT:
            self.add_endpoint_requested.emit()
        elif kind == OPEN_MODEL:
            self.open_model_requested.emit()


def _in_process(model_id: str) -> bool:
    try:
        return ModelRef.parse(model_id).in_process
    except AppError:
        return False


class _Placeholder:
    """Stands for the current model before the listing arrives (or a typed one)."""

    def __init__(self, model_id: str, endpoint: str | None) -> None:
        try:
            self.ref = ModelRef.parse(model_id)
        except AppError:
            self.ref = ModelRef("mock", model_id)
        self.endpoint = endpoint
        self.display_name = model_id
        self.state = "available"
        self.description = ""
        self.fast_path: str | None = None
