"""Where things live. Everything generated goes under `var/`, which git ignores."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VAR_DIR = PROJECT_ROOT / "var"

# Rasa 3.6 lives in its own Python 3.10 environment (DESIGN §2).
BOT_VENV = Path(os.environ.get("CRM_BOT_VENV", PROJECT_ROOT / ".venv-bot"))
RASA_BIN = BOT_VENV / "bin" / "rasa"

RASA_CONFIG = PROJECT_ROOT / "config.yml"
BOT_DIR = PROJECT_ROOT / "bot"
BOT_DOMAIN = BOT_DIR / "domain"
BOT_DATA = BOT_DIR / "data"
BOT_LOCK_FILE = PROJECT_ROOT / "requirements" / "bot.lock.txt"

# Written from the store before each training; `config.yml` names GENERATED_JIEBA_DIR.
GENERATED_BOT_DIR = VAR_DIR / "bot"
GENERATED_NLU_DIR = GENERATED_BOT_DIR / "data"
GENERATED_JIEBA_DIR = GENERATED_BOT_DIR / "jieba"
MODELS_DIR = VAR_DIR / "models"


def demo_fixture_dir() -> Path:
    """The demo company, from `../shared` beside the project unless CRM_DEMO_DIR says otherwise."""
    default = PROJECT_ROOT.parent / "shared" / "fixtures" / "demo_crm"
    return Path(os.environ.get("CRM_DEMO_DIR", default))
