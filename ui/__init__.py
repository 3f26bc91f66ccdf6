"""The Gradio chat, its embed view and the HTTP API. It renders Answers and never touches Chroma."""

import os

# Before anything imports Gradio: no usage analytics or version checks leave the machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
