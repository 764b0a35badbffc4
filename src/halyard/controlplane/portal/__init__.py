"""The web portal at ``/portal``: server-rendered pages (Jinja2, htmx) that call the management API with the signed-in
user's own token, so they show exactly what RBAC lets that user see. docs/portal.md, decision 012."""
