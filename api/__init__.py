"""The public HTTP entry of 小助手: chat gateway to Rasa, health report and the web chat page.

`api.main:app` is the ASGI application; `api.main.create_app` builds a fresh one (tests do).
"""
