"""The local web app and control API: pages for a phone, JSON for the CLI (README "Web app")."""
