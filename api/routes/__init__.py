"""The API's routers, one module per resource; `api.main` mounts them."""
