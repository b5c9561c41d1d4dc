"""The interactive editor in the browser (scripts/editor.py): a small page over a standard-library HTTP server."""
