"""Light/dark theme that follows the OS colour scheme: Fusion style, a palette and a stylesheet."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication


@dataclass
class CodeStyle:
    """Colours for code blocks (light or dark theme)."""

    pygments_style: str = "friendly"
    background: str = "#f6f8fa"
    header: str = "#57606a"
    link: str = "#0969da"


LIGHT_CODE = CodeStyle()
DARK_CODE = CodeStyle("github-dark", "#161b22", "#8b949e", "#58a6ff")


@dataclass(frozen=True)
class Theme:
    """Colours used by the stylesheet and by widgets that paint themselves."""

    dark: bool
    window: str
    base: str
    text: str
    muted: str
    accent: str
    accent_text: str
    border: str
    user_bubble: str
    assistant_bubble: str
    error: str
    code: CodeStyle


LIGHT = Theme(False, "#f3f4f6", "#ffffff", "#1f2328", "#6b7280", "#2563eb", "#ffffff",
              "#d9dde3", "#e8f0fe", "#ffffff", "#b42318", LIGHT_CODE)
DARK = Theme(True, "#1b1d21", "#24272c", "#e6e8eb", "#9aa1ab", "#4f8cff", "#ffffff",
             "#383c43", "#233049", "#24272c", "#ff7b72", DARK_CODE)


SYSTEM_SIZE = "llmPlaygroundSystemPointSize"
FUSION = "llmPlaygroundFusion"
_PALETTE_ROLES = {
    "Window": "window", "Base": "base", "AlternateBase": "window", "Text": "text",
    "WindowText": "text", "Button": "base", "ButtonText": "text", "Highlight": "accent",
    "HighlightedText": "accent_text", "Link": "accent", "PlaceholderText": "muted",
    "ToolTipBase": "base", "ToolTipText": "text",
}
"""QPalette colour role -> the :class:`Theme` field that colours it (every colour group)."""


def os_prefers_dark() -> bool:
    """True when the OS colour scheme is dark."""
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def current(choice: str = "system") -> Theme:
    """The theme for ``choice``: "light", "dark", or "system" (the OS scheme right now)."""
    if choice == "light":
        return LIGHT
    if choice == "dark":
        return DARK
    return DARK if os_prefers_dark() else LIGHT


def stylesheet(t: Theme) -> str:
    """The application stylesheet for ``t``."""
    return f"""
    QMainWindow, QDialog {{ background: {t.window}; }}
    QToolBar {{ background: {t.base}; border: none; border-bottom: 1px solid {t.border};
               padding: 4px 8px; spacing: 6px; }}
    QToolBar QToolButton {{ padding: 5px 10px; border-radius: 6px; }}
    QToolBar QToolButton:hover {{ background: {t.window}; }}
    QStatusBar {{ background: {t.base}; border-top: 1px solid {t.border}; color: {t.muted}; }}
    QDockWidget {{ color: {t.text}; }}
    QDockWidget::title {{ background: {t.base}; padding: 6px 8px; border-bottom: 1px solid {t.border}; }}
    QScrollArea#transcript, QWidget#transcriptInner {{ background: {t.window}; border: none; }}
    QFrame#card_user {{ background: {t.user_bubble}; border: 1px solid {t.border}; border-radius: 12px; }}
    QFrame#card_assistant {{ background: {t.assistant_bubble}; border: 1px solid {t.border};
                            border-radius: 12px; }}
    QFrame#card_user QTextBrowser, QFrame#card_assistant QTextBrowser {{ background: transparent;
                            border: none; color: {t.text}; }}
    QLabel#cardRole {{ font-weight: 600; color: {t.text}; }}
    QLabel#cardModel, QLabel#cardFigures {{ color: {t.muted}; }}
    QLabel#cardError {{ color: {t.error}; }}
    QLabel#emptyState {{ color: {t.muted}; font-size: 15px; }}
    QToolButton#cardAction {{ border: none; color: {t.muted}; padding: 2px 6px; border-radius: 4px; }}
    QToolButton#cardAction:hover {{ background: {t.window}; color: {t.text}; }}
    QFrame#promptPanel {{ background: {t.base}; border-top: 1px solid {t.border}; }}
    QPlainTextEdit#messageEdit {{ background: {t.base}; border: 1px solid {t.border};
                                  border-radius: 8px; padding: 6px; color: {t.text}; }}
    QPlainTextEdit#systemEdit {{ background: {t.window}; border: 1px solid {t.border};
                                 border-radius: 8px; padding: 4px; color: {t.text}; }}
    QPushButton#sendButton {{ background: {t.accent}; color: {t.accent_text}; border: none;
                              border-radius: 8px; padding: 8px 18px; font-weight: 600; }}
    QPushButton#sendButton:disabled {{ background: {t.border}; color: {t.muted}; }}
    QPushButton#stopButton {{ border: 1px solid {t.error}; color: {t.error}; border-radius: 8px;
                              padding: 8px 14px; background: {t.base}; }}
    QPushButton#stopButton:disabled {{ border-color: {t.border}; color: {t.muted}; }}
    QLabel#tokenCounter {{ color: {t.muted}; }}
    QComboBox#modelPicker {{ min-width: 260px; padding: 4px 8px; }}
    """


def apply(app: QApplication, choice: str = "system", font_size: int | None = None) -> Theme:
    """Apply the Fusion style, a palette and the stylesheet for ``choice`` (system: the OS
    scheme) and the font size in points (None: the system's); return the theme."""
    t = current(choice)
    system_size = app.property(SYSTEM_SIZE)  # the size before one was chosen, to go back to it
    if system_size is None:
        system_size = app.font().pointSizeF()
        app.setProperty(SYSTEM_SIZE, system_size)
    font = QFont(app.font())
    font.setPointSizeF(float(font_size) if font_size else float(system_size))
    # Each setter below re-polishes every widget: only what changed is set (start-up applies
    # the system theme to the bare frame, then the saved settings, usually the same).
    if font != app.font():
        app.setFont(font)
    if not app.property(FUSION):
        app.setStyle("Fusion")
        app.setProperty(FUSION, True)
    pal = QPalette()
    for name, field in _PALETTE_ROLES.items():
        pal.setColor(getattr(QPalette.ColorRole, name), QColor(getattr(t, field)))
    disabled = QPalette.ColorGroup.Disabled  # (setColor(role, c) above set every group)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        pal.setColor(disabled, role, QColor(t.muted))
    pal.setColor(disabled, QPalette.ColorRole.Button, QColor(t.window))
    if pal != app.palette():
        app.setPalette(pal)
    sheet = stylesheet(t)
    if sheet != app.styleSheet():
        app.setStyleSheet(sheet)
    return t
