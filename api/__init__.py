"""The public HTTP entry of 小助手: chat gateway to Rasa, health report and the web chat page.

`api.main:app` is the ASGI application; `api.main.create_app` builds a fresh one (tests do).
"""

from pathlib import Path
from typing import Final

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
"""The pages, scripts and stylesheets the API serves (under `/static`, and its pages)."""
