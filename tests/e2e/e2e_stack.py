"""A handle on the running stack that the e2e tests chat with."""

from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True)
class RunningStack:
    api_url: str
    database_url: str
    rasa_port: int
    action_port: int
    api_port: int
    log_file: Path

    def chat(self, sender: str, message: str) -> list[dict[str, object]]:
        response = httpx.post(
            f"{self.api_url}/api/chat", json={"sender": sender, "message": message}, timeout=60
        )
        assert response.status_code == 200, response.text
        messages: list[dict[str, object]] = response.json()
        return messages

    def chat_text(self, sender: str, message: str) -> str:
        return "\n".join(str(m.get("text", "")) for m in self.chat(sender, message))
