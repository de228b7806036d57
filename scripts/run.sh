#!/usr/bin/env bash
# Set everything up (scripts/setup.sh), then start LLM Playground. With no OpenAI key it opens
# on the bundled SmolLM2 model, offline. Arguments go to the app, e.g.
# `bash scripts/run.sh ask -m local:smollm2 "What is the capital of France?"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
if [ $# -eq 0 ] && [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ "$(uname)" = Linux ]; then
  if command -v xvfb-run >/dev/null 2>&1; then
    echo "run: no display found; starting on a virtual display (xvfb-run)" >&2
    exec xvfb-run -a .venv/bin/python -m app
  fi
  echo "run: no display found. Use a desktop session, install xvfb, or try the CLI:" >&2
  echo "     bash scripts/run.sh ask \"What is the capital of France?\"" >&2
  exit 1
fi
exec .venv/bin/python -m app "$@"
