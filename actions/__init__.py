"""Custom actions of the Rasa action server: thin adapters from a dialogue turn to the services.

`python -m rasa_sdk --actions actions` imports every module of this package and registers
the actions it finds. Business rules live in `crm_store`, `knowledge` and `care`.
"""
