"""The local server: the app's models, LoRA adapters and keys as an OpenAI-compatible HTTP
API (``python -m app serve``, or the window's Server panel). Qt-free; a front end like the
CLI: an HTTP request becomes a ``GenerationRequest`` for the run scheduler, the run's events
become SSE chunks. Start with :class:`app.serve.server.LocalServer`."""
