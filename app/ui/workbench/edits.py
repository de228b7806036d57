"""Editing the Workbench's grid (a mixin of the window): columns (add from the model picker,
duplicate, remove, edit inline, "base vs adapter", "same model at three temperatures"),
cases (add, remove, import CSV / JSONL; edited in place in the table) and prompts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QFileDialog

from app.core.errors import AppError
from app.core.grid.cases import load_cases
from app.core.grid.model import GridConfig, Prompt, TestCase, Variant
from app.core.types import AdapterSpec, ModelRef

if TYPE_CHECKING:
    from app.ui.workbench.bench import Bench

TEMPERATURES = (0.0, 0.7, 1.4)


class EditActions:
    """See the module doc."""

    def _ew(self) -> Bench:
        return self  # type: ignore[return-value]  # the window (see bench.py)

    # -- variants -------------------------------------------------------------------------------
    def _variants(self, variants: list[Variant], select: int | None = None) -> None:
        w = self._ew()
        self._ew().set_config(self._ew().config.with_(variants=tuple(variants)))
        if select is not None and 0 <= select < len(variants):
            w.variant_editor.set_variant(select, variants[select])
            w.table.setCurrentIndex(w.model.index(0, w.model.column_of(select)))
            w.tabs.setCurrentWidget(w.variant_editor)

    def _on_picker_selected(self, model_id: str, endpoint: str | None) -> None:
        self._ew()._picked = (model_id, endpoint)
        self._ew().picker.set_current(model_id, endpoint)

    def add_picked(self) -> None:
        """Add the model chosen in the picker as a new column."""
        w = self._ew()
        model_id, endpoint = w._picked or (w.picker.current_model(), None)
        if model_id:
            self._ew().add_variant(model_id, endpoint)

    def add_variant(self, model_id: str, endpoint: str | None = None, **fields: Any) -> Variant | None:
        """Add a column for ``model_id`` (``fields``: label, temperature, adapters...)."""
        w = self._ew()
        if self._ew()._busy():
            return None
        try:
            ref = ModelRef.parse(model_id)
        except AppError as exc:
            w.show_message(exc.user_message(), "error")
            return None
        variant = Variant(str(ref), endpoint=endpoint if ref.caps.endpoints else None, **fields)
        variants = [*self._ew().config.variants, variant]
        self._ew()._variants(variants, len(variants) - 1)
        return variant

    def duplicate_variant(self, col: int | None = None) -> None:
        """Copy a column next to itself (then edit the copy)."""
        col = self._ew().selected_variant() if col is None else col
        if col is None or self._ew()._busy():
            self._ew().show_message("Select a column first (click its header).", "warning")
            return
        variants = list(self._ew().config.variants)
        copy = variants[col].with_(label=(variants[col].title + " (copy)"))
        variants.insert(col + 1, copy)
        self._ew()._variants(variants, col + 1)

    def remove_variant(self, col: int | None = None) -> None:
        """Remove a column."""
        col = self._ew().selected_variant() if col is None else col
        if col is None or self._ew()._busy():
            return
        variants = list(self._ew().config.variants)
        del variants[col]
        self._ew()._variants(variants)
        self._ew().variant_editor.set_variant(None, None)

    def _base(self, col: int | None) -> tuple[Variant | None, int | None]:
        w = self._ew()
        col = w.selected_variant() if col is None else col
        variants = self._ew().config.variants
        if col is None and len(variants) == 1:  # the only column
            col = 0
        if col is not None and col < len(variants):
            return variants[col], col
        if w.host is not None:
            return Variant(w.host.backend.current_model(), endpoint=w.host.backend.current_endpoint()), None
        return None, None

    def base_vs_adapter(self, col: int | None = None, adapter_path: str | None = None) -> None:
        """Two columns: a local model without and with LoRA adapters (the main window's active
        adapters, or one picked in a folder dialog)."""
        w = self._ew()
        if self._ew()._busy():
            return
        base, at = self._base(col)
        if base is None or not base.ref.takes_adapters:
            w.show_message("Base vs adapter needs a local or Hugging Face model: select such a column, or pick one "
                           "in the main window.", "warning")  # fmt: skip
            return
        adapters: tuple[AdapterSpec, ...] = ()
        if adapter_path is None and w.host is not None and w.host.backend.current_model() == base.model:
            adapters = tuple(AdapterSpec(a.path, a.scale) for a in w.host.backend.active_adapters())
        if not adapters:
            if adapter_path is None:
                adapter_path = QFileDialog.getExistingDirectory(w.window(), "LoRA adapter folder", str(Path.home()))
                if not adapter_path:
                    return
            adapters = (AdapterSpec(adapter_path),)
        plain = base.with_(adapters=(), label=base.label or base.model)
        names = ", ".join(Path(a.path).name + (f":{a.scale:g}" if a.scale != 1 else "") for a in adapters)
        tuned = base.with_(adapters=adapters, label=f"{base.label or base.model} + {names}")
        variants = list(self._ew().config.variants)
        if at is None:
            variants += [plain, tuned]
        else:
            variants[at:at + 1] = [plain, tuned]
        self._ew()._variants(variants, variants.index(tuned))

    def three_temperatures(self, col: int | None = None, temperatures: tuple[float, ...] = TEMPERATURES) -> None:
        """The selected column (or the main window's model) at three temperatures."""
        w = self._ew()
        if self._ew()._busy():
            return
        base, at = self._base(col)
        if base is None:
            w.show_message("Add a column first.", "warning")
            return
        name = base.label or base.model
        copies = [base.with_(temperature=t, label=f"{name} · T={t:g}") for t in temperatures]
        variants = list(self._ew().config.variants)
        if at is None:
            variants += copies
        else:
            variants[at:at + 1] = copies
        self._ew()._variants(variants, variants.index(copies[0]))

    def _on_variant_edited(self, col: int, variant: Variant) -> None:
        variants = list(self._ew().config.variants)
        if 0 <= col < len(variants):
            variants[col] = variant
            self._ew().set_config(self._ew().config.with_(variants=tuple(variants)))

    def _on_header_clicked(self, section: int) -> None:
        w = self._ew()
        v = w.model.variant_of(section)
        if v is not None and not w.blind:
            w.variant_editor.set_variant(v, self._ew().config.variants[v])
            w.tabs.setCurrentWidget(w.variant_editor)

    # -- cases and prompts ----------------------------------------------------------------------
    def add_case(self) -> None:
        """A new, empty case (a row)."""
        if self._ew()._busy():
            return
        names = self._ew().model.var_names
        tests = list(self._ew().config.tests) or [TestCase({n: "" for n in names})]
        if self._ew().config.tests:
            tests.append(TestCase({n: "" for n in names}))
        self._ew().set_config(self._ew().config.with_(tests=tuple(tests)))

    def remove_case(self, row: int | None = None) -> None:
        """Remove the selected case."""
        w = self._ew()
        if self._ew()._busy():
            return
        row = w.table.currentIndex().row() if row is None else row
        if row < 0 or row >= len(w.model.rows) or w.model.rows[row].test_index is None:
            return
        tests = list(self._ew().config.tests)
        del tests[w.model.rows[row].test_index]  # type: ignore[arg-type]
        self._ew().set_config(self._ew().config.with_(tests=tuple(tests)))

    def import_cases(self, path: str | Path | None = None) -> int:
        """Add cases from a CSV / JSONL file (replacing empty ones); returns how many."""
        w = self._ew()
        if self._ew()._busy():
            return 0
        if path is None:
            path, _ = QFileDialog.getOpenFileName(w.window(), "Import cases", str(Path.home()),
                                                  "Cases (*.csv *.jsonl *.ndjson *.json *.yaml *.yml);;All files (*)")  # fmt: skip
            if not path:
                return 0
        try:
            cases = load_cases(Path(path))
        except AppError as exc:
            w.show_message(exc.user_message(), "error")
            return 0
        kept = [t for t in self._ew().config.tests if any(str(v).strip() for v in t.vars.values()) or t.asserts]
        self._ew().set_config(self._ew().config.with_(tests=(*kept, *cases)))
        w.show_message(f"Imported {len(cases)} cases from {Path(path).name}.", "ok")
        return len(cases)

    def add_prompt(self) -> None:
        """Another prompt template."""
        if self._ew()._busy():
            return
        self._ew().set_config(self._ew().config.with_(prompts=(*self._ew().config.prompts, Prompt(""))))
        self._ew()._fill_prompts(len(self._ew().config.prompts) - 1)
        self._ew().prompt_edit.setFocus()

    def _on_prompt_chosen(self, index: int) -> None:
        self._ew()._fill_prompts(index)

    def _on_prompt_edited(self) -> None:
        w = self._ew()
        i = max(0, w.prompt_box.currentIndex())
        prompts = list(self._ew().config.prompts) or [Prompt("")]
        text = w.prompt_edit.toPlainText()
        if prompts[i].template != text:
            prompts[i] = Prompt(text, prompts[i].label)
            self._ew().set_config(self._ew().config.with_(prompts=tuple(prompts)))

    def _on_description_edited(self) -> None:
        text = self._ew().description.text().strip()
        if text != self._ew().config.description:
            self._ew().set_config(self._ew().config.with_(description=text))

    def _on_model_config_edited(self, config: GridConfig) -> None:
        self._ew().set_config(config)
