"""Where the CLI finds things. Everything generated goes under `var/`, which git ignores.

The root and `var/` come from `crm_store.settings`, the one home of configuration; the bot
environment's location is a setting there too (`CRM_BOT_VENV`).
"""

from pathlib import Path

from crm_store.settings import DEMO_DIR, PROJECT_ROOT, VAR_DIR, get_stack_settings

__all__ = [
    "BOT_DATA",
    "BOT_DIR",
    "BOT_DOMAIN",
    "BOT_LOCK_FILE",
    "DEMO_DIR",
    "GENERATED_BOT_DIR",
    "GENERATED_JIEBA_DIR",
    "GENERATED_NLU_DIR",
    "MODELS_DIR",
    "PROJECT_ROOT",
    "RASA_CONFIG",
    "VAR_DIR",
    "demo_fixture_dir",
    "rasa_bin",
]

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


def rasa_bin() -> Path:
    """The `rasa` command of the bot environment (Rasa 3.6 lives in its own Python 3.10 env)."""
    return get_stack_settings().bot_venv / "bin" / "rasa"


def rasa_server_command() -> list[str]:
    """The command that serves a model: `rasa` with the project's fixes to Rasa 3.6 applied first
    (bot/rasa_server.py); Rasa's own arguments follow, from `run` on."""
    return [str(get_stack_settings().bot_venv / "bin" / "python"), "-m", "bot.rasa_server"]


def demo_fixture_dir() -> Path:
    """The demo company: `demo/` in the repository unless CRM_DEMO_DIR says otherwise."""
    return get_stack_settings().demo_dir
