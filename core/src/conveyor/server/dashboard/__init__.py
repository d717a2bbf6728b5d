"""The dashboard: runs as live DAGs, logs, artifacts and their views, pipelines, stacks, in a browser.

``conveyor ui`` serves it over the local store (127.0.0.1, no login);
``conveyor server start`` serves the same pages beside the API (login form,
roles respected). Pages are rendered on the server; htmx (vendored under
``static/``) refreshes the live parts, so no JavaScript build step exists.
"""

from conveyor.server.dashboard._app import COOKIE, DashboardSource, create_ui_app, mount_dashboard

__all__ = ["COOKIE", "DashboardSource", "create_ui_app", "mount_dashboard"]
