"""The file of an encoder's model directory that the offline work writes and the runtime reads.

`knowledge.training` builds and tunes models and stamps each with what it was made from; the
runtime only reads that stamp, so it needs this name without importing any training code.
"""

from typing import Final

STAMP_FILE: Final = "built-from.json"
"""What the model was built or tuned from. Its modification time is part of the encoder's model id
(`knowledge.encoder`, so an index saved by other weights is not reused), and its content decides
whether the model's ONNX export is current (`knowledge.onnx_graph`)."""
