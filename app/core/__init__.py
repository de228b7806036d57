"""Qt-free core: types, events, errors, tokens, pricing, usage, secrets, settings, history."""
