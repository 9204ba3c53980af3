"""The error vocabulary of the knowledge base.

Our exception hierarchy:

* KnowledgeError            anything the knowledge base refuses or cannot do; catch this base
                            where every knowledge failure is handled alike
  + EncoderUnavailable      the encoder directory is missing or unreadable (also a RuntimeError)
  + KnowledgeUnavailable    the knowledge service could not be loaded, or not in time
                            (`knowledge.holder.KnowledgeHolder.require`; also a RuntimeError)
  + TuningError             too little to tune on, or the base model is missing (also a
                            RuntimeError; raised by the offline `knowledge.training` modules)
  + EvalSetError            a file is not a paraphrase set in the expected format (also a
                            ValueError)
  + CrowdingNotKept         ranking asked for the hubness correction of an index built without
                            it (also a ValueError: a caller's mistake, not the data's)

Each leaf also derives from the built-in error it was before this module existed, so an
`except RuntimeError` or `except ValueError` written against the old classes still catches it.
The messages are for developers and staff operating the CLI, never for customers, and carry no
personal data (paths and counts only).
"""

__all__ = [
    "CrowdingNotKept",
    "EncoderUnavailable",
    "EvalSetError",
    "KnowledgeError",
    "KnowledgeUnavailable",
    "TuningError",
]


class KnowledgeError(Exception):
    """The knowledge base failed or refused; the base of every error below."""


class EncoderUnavailable(KnowledgeError, RuntimeError):
    """The encoder directory is missing or unreadable."""


class KnowledgeUnavailable(KnowledgeError, RuntimeError):
    """The knowledge service could not be loaded (its load failed or did not finish in time)."""


class TuningError(KnowledgeError, RuntimeError):
    """Too little to tune on, or the base model is missing."""


class EvalSetError(KnowledgeError, ValueError):
    """The file is not a paraphrase set in the expected format."""


class CrowdingNotKept(KnowledgeError, ValueError):
    """The index keeps no crowding: it was built with `IndexConfig(crowding_weight=0)`."""
