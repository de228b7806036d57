"""The model picker: one dropdown grouped by provider and endpoint, with each model's state,
plus "Add endpoint..." and "Open model file/folder..." entries.

Signals:
    model_selected(str model_id, object endpoint): the user chose a model (endpoint or None).
    add_endpoint_requested()
    open_model_requested()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QComboBox, QWidget

if TYPE_CHECKING:
    from app.core.services import ModelListing
    from app.core.types import ModelInfo

ROLE_ID = Qt.ItemDataRole.UserRole + 1
ROLE_ENDPOINT = Qt.ItemDataRole.UserRole + 2
ROLE_KIND = Qt.ItemDataRole.UserRole + 3
ADD_ENDPOINT = "__add_endpoint__"
OPEN_MODEL = "__open_model__"
STATE_LABELS = {
    "ready": "ready",
    "available": "",
    "needs_key": "needs key",
    "not_downloaded": "not downloaded",
    "loading": "loading…",
    "unavailable": "unavailable",
}
GROUP_ORDER = ("OpenAI", "endpoints", "Hugging Face", "Local files", "Mock (testing)")


def group_of(info: ModelInfo) -> str:
    """The group title of a ModelInfo: OpenAI, the endpoint's name, Hugging Face, ..."""
    provider = info.ref.provider
    if provider == "openai":
        ep = info.endpoint or "OpenAI"
        return "OpenAI" if ep.lower() == "openai" else f"Endpoint: {ep}"
    return {"huggingface": "Hugging Face", "local": "Local files", "mock": "Mock (testing)"}.get(provider, provider)


def _group_rank(title: str) -> tuple[int, str]:
    if title.startswith("Endpoint: "):
        return GROUP_ORDER.index("endpoints"), title
    return (GROUP_ORDER.index(title) if title in GROUP_ORDER else len(GROUP_ORDER)), title


class ModelPicker(QComboBox):
    """Grouped model dropdown (see the module doc for the signals)."""

    model_selected = Signal(str, object)
    add_endpoint_requested = Signal()
    open_model_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelPicker")
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.setMaxVisibleItems(24)
        self._model = QStandardItemModel(self)
        self.setModel(self._model)
        self._infos: dict[tuple[str, str | None], Any] = {}
        self._states: dict[str, str] = {}
        self._errors: dict[str, str] = {}
        self._current: tuple[str, str | None] = ("", None)
        self._building = False
        self.activated.connect(self._on_activated)
        self._rebuild()

    # -- data -----------------------------------------------------------------------------------
    def set_listing(self, listing: ModelListing) -> None:
        """Show a ModelListing (models + per-provider errors)."""
        self._infos = {(str(m.ref), m.endpoint): m for m in listing.models}
        self._errors = dict(listing.errors)
        self._rebuild()

    def set_current(self, model_id: str, endpoint: str | None = None) -> None:
        """Select ``model_id`` (added to the list when unknown)."""
        self._current = (model_id, endpoint)
        self._rebuild()

    def set_state(self, model_id: str, state: str | None) -> None:
        """Override a model's shown state (e.g. loading, ready); None clears the override."""
        if state is None:
            self._states.pop(model_id, None)
        else:
            self._states[model_id] = state
        self._rebuild()

    def current_model(self) -> str:
        """The selected model id."""
        return self._current[0]

    def model_ids(self) -> list[str]:
        """Every selectable model id, in order."""
        out = []
        for row in range(self._model.rowCount()):
            item = self._model.item(row)
            if item.data(ROLE_KIND) == "model":
                out.append(item.data(ROLE_ID))
        return out

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

    # -- building -------------------------------------------------------------------------------
    def _label(self, info: ModelInfo) -> str:
        mid = str(info.ref)
        state = self._states.get(mid, info.state)
        if state == "available" and (mid, info.endpoint) == self._current:
            state = "ready"
        suffix = STATE_LABELS.get(state, state)
        return f"{info.display_name}" + (f"   —   {suffix}" if suffix else "")

    def _rebuild(self) -> None:
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
            select_row = -1
            for title in sorted(groups, key=_group_rank):
                self._add_header(title)
                for info in sorted(groups[title], key=lambda i: i.display_name.lower()):
                    item = QStandardItem("    " + self._label(info))
                    item.setData(str(info.ref), ROLE_ID)
                    item.setData(info.endpoint, ROLE_ENDPOINT)
                    item.setData("model", ROLE_KIND)
                    item.setToolTip(f"{info.ref}" + (f" @ {info.endpoint}" if info.endpoint else "")
                                    + (f"\n{info.description}" if info.description else ""))
                    self._model.appendRow(item)
                    if str(info.ref) == cur_id and (cur_ep is None or info.endpoint == cur_ep) and select_row < 0:
                        select_row = self._model.rowCount() - 1
            for provider, error in sorted(self._errors.items()):
                item = QStandardItem(f"    ⚠ {provider}: {error[:80]}")
                item.setToolTip(error)
                item.setFlags(Qt.ItemFlag.NoItemFlags)
                self._model.appendRow(item)
            self.insertSeparator(self._model.rowCount())
            for text, kind in (("Add endpoint…", ADD_ENDPOINT), ("Open model file/folder…", OPEN_MODEL)):
                item = QStandardItem(text)
                item.setData(kind, ROLE_KIND)
                self._model.appendRow(item)
            if select_row >= 0:
                self.setCurrentIndex(select_row)
        finally:
            self._building = False

    def _add_header(self, title: str) -> None:
        item = QStandardItem(title)
        font = QFont(self.font())
        font.setBold(True)
        item.setFont(font)
        item.setFlags(Qt.ItemFlag.NoItemFlags)
        item.setData("header", ROLE_KIND)
        self._model.appendRow(item)

    def _on_activated(self, row: int) -> None:
        if self._building or row < 0:
            return
        item = self._model.item(row)
        kind = item.data(ROLE_KIND) if item is not None else None
        if kind == "model":
            mid, ep = item.data(ROLE_ID), item.data(ROLE_ENDPOINT)
            if (mid, ep) != self._current:
                self.model_selected.emit(mid, ep)
            return
        self._rebuild()  # back to the current model
        if kind == ADD_ENDPOINT:
            self.add_endpoint_requested.emit()
        elif kind == OPEN_MODEL:
            self.open_model_requested.emit()


class _Placeholder:
    """Stands for the current model before the listing arrives."""

    def __init__(self, model_id: str, endpoint: str | None) -> None:
        from app.core.types import ModelRef

        self.ref = ModelRef.parse(model_id)
        self.endpoint = endpoint
        self.display_name = model_id
        self.state = "available"
        self.description = ""
