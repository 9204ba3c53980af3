"""Tests of the app as a whole: docs, the web chat page, error handling and the lifespan."""

import httpx
import pytest
from api_stubs import StubServices
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import INTERNAL_ERROR_DETAIL, create_app


def test_openapi_json_served_with_chinese_title(client: TestClient) -> None:
    response = client.get("/openapi.json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "小助手 CRM API"
    assert {"/api/chat", "/health"} <= set(schema["paths"])


def test_docs_page_served(client: TestClient) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "/openapi.json" in response.text
    # Offline machines: the page must load Swagger UI from this server, never from a CDN.
    assert "cdn" not in response.text.lower()
    script = client.get("/static-offline-docs/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert len(script.content) > 100_000


def test_index_serves_chat_page(client: TestClient) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>小助手 · 在线客服</title>" in response.text
    assert "/static/chat.js" in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_index_page_loads_nothing_from_other_hosts(client: TestClient) -> None:
    page = client.get("/").text + client.get("/static/chat.js").text + client.get("/static/chat.css").text

    assert "http://" not in page
    assert "https://" not in page


def test_customer_page_served_with_the_page_policy(client: TestClient) -> None:
    response = client.get("/customers/C0003")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/static/customer.js" in response.text
    # No data in the page itself: its script asks /api/customers/{id} with the staff sign-in.
    assert "王芳" not in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy


@pytest.mark.parametrize(
    "path",
    [
        "/customers/..%2Fx",
        "/customers/C0003%3Cb%3E",
        "/customers/C%200003",
        "/customers/C0003.html",
        "/customers/" + "C" * 33,
        "/customers/",
    ],
)
def test_customer_page_of_a_malformed_id_is_not_found(client: TestClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
    assert "content-security-policy" not in response.headers


def test_customer_page_loads_nothing_from_other_hosts(client: TestClient) -> None:
    page = "".join(
        client.get(path).text for path in ("/customers/C0003", "/static/customer.js", "/static/customer.css")
    )

    assert "http://" not in page
    assert "https://" not in page
    assert "innerHTML" not in page


def test_static_assets_served(client: TestClient) -> None:
    script = client.get("/static/chat.js")
    style = client.get("/static/chat.css")

    assert script.status_code == 200
    assert "/api/chat" in script.text
    assert style.status_code == 200
    assert ".bubble" in style.text


def test_malformed_json_gives_422_json_without_traceback(client: TestClient, stubs: StubServices) -> None:
    response = client.post(
        "/api/chat", content=b'{"sender": "web-u1", "message": ', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert detail[0]["type"] == "json_invalid"
    assert set(detail[0]) == {"loc", "msg", "type"}
    assert "Traceback" not in response.text
    assert stubs.webhook_calls == []


def test_validation_error_does_not_echo_input(client: TestClient) -> None:
    response = client.post("/api/chat", json={"sender": "bad sender!", "message": "我的身份证号 110101"})

    assert response.status_code == 422
    assert "110101" not in response.text
    assert "bad sender!" not in response.text


def test_unhandled_error_gives_chinese_500_without_traceback(client: TestClient, stubs: StubServices) -> None:
    stubs.unexpected_error = RuntimeError("internal detail: connection pool state 0xdeadbeef")

    response = client.post("/api/chat", json={"sender": "web-u1", "message": "你好"})

    assert response.status_code == 500
    assert response.json() == {"detail": INTERNAL_ERROR_DETAIL}
    assert "0xdeadbeef" not in response.text
    assert "Traceback" not in response.text


def test_lifespan_creates_and_closes_shared_resources(database_url: str) -> None:

    app: FastAPI = create_app()
    with TestClient(app) as client:
        http_client = app.state.http_client
        assert isinstance(http_client, httpx.AsyncClient)
        assert not http_client.is_closed
        assert str(app.state.engine.url) == database_url
        client.get("/openapi.json")

    assert http_client.is_closed
