"""Widgets of the main window (transcript, prompt editor, model picker, docks and dialogs)."""
