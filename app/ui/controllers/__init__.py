"""The main window's controllers: small QObjects the window owns and wires in one place
(:meth:`app.ui.main_window.MainWindow._wire`). Each holds one concern's logic behind a narrow
interface and talks back through its signals; none knows the window.

- :class:`~app.ui.controllers.models.ModelController`: choosing and loading the model.
- :class:`~app.ui.controllers.chat.ChatController`: sending, regenerating, editing, branching.
- :class:`~app.ui.controllers.conversations.ConversationController`: which conversation is
  open (new, open, fork, rename, delete) and its export.
- :class:`~app.ui.controllers.dialogs.DialogController`: the keys, settings and comparison
  dialogs.
- :class:`~app.ui.controllers.counter.RequestCounter`: the before-send token and cost estimate.

A new concern (a Tools panel, tool-call cards) gets its own controller here, wired the same way.
"""
