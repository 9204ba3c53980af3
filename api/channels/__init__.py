"""The channel layer: one small module per way customers and staff reach 小助手.

Every channel turns what its platform sends into turns of `api.gateway.chat_turn` and shows the
bot messages it answers (the shape of Rasa's REST channel) in its platform's own format; staff
replies of a hand-off and proactive care messages come from `api.gateway.pending_updates`. No
channel talks to Rasa, the hand-off service or the care inbox itself, so every channel gets the
same cleaning, limits, hand-off relay, role stamping and polite apology. docs/channels.md says how
to set each one up.

| channel    | module                  | conversation                          |
|------------|-------------------------|---------------------------------------|
| `web`      | api/routes/chat.py      | `conversation_id(principal, sender)`  |
| `socketio` | api/channels/socketio.py| `conversation_id(principal, session)` |
| `wechat`   | api/channels/wechat.py  | `wechat:<openid>`                     |
| `wecom`    | api/channels/wecom.py   | `staff:<employee_id>:wecom`           |

To add a channel:

1. Add its name to `api.gateway.CHANNELS` (it is stamped into every turn's metadata as `channel`,
   so the actions and the tracker store see where a turn came from).
2. Write `api/channels/<name>.py`: authenticate the platform's callbacks, choose a conversation id
   that no other channel can produce (and that a customer can never make start with `staff:`),
   establish the principal from something the platform proves (a signed token, a verified
   callback), never from what the client claims, and call `chat_turn` / `pending_updates`.
3. Its settings go into a settings class of `crm_store/settings.py` (credentials as `SecretStr`,
   never logged); regenerate docs/configuration.md with `python -m crmbot.settings_doc --write`.
4. Its words (acknowledgements and the like) go into api/texts.yml under its name, in polite
   简体中文, read by `api.texts.wording`; the bot's words come from Rasa's domain.
5. Mount it in `api.main.create_app`, test it with the platform's real client library against the
   API on loopback, and add its section to docs/channels.md.
"""
