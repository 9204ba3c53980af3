"""Custom actions of the Rasa action server: thin adapters from a dialogue turn to the services.

One module per flow (orders, identity, complaints, handoff, faq); none imports another, and all
share `actions.support`. Business rules live in `crm_store`, `knowledge` and `care`; every
sentence and button title the customer sees is a response of the bot's domain (bot/domain/).

`python -m actions --port 5055` runs the server (`actions/__main__.py`): rasa_sdk's own, which
imports every module of this package and registers the actions it finds, plus the knowledge
base's warm-up when the server has started.
"""
