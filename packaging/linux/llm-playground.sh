#!/bin/sh
# Launcher installed as /usr/bin/llm-playground by the .deb.
exec /opt/llm-playground/llm-playground "$@"
