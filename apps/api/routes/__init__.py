"""The API's routes, one `APIRouter` per resource, included by `apps.api.app.create_app` in
this order: `predict`, `forecast`, `model`, `operations` (which is also their order in the
OpenAPI document)."""
