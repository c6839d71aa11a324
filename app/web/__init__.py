"""The web app: page routes (routes.py), Jinja2 templates and static files (package data)."""
