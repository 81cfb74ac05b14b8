"""Small shared types: locations, errors, YAML I/O, the compiled-tree index.

Everything here is safe for the in-cluster agent and the ferry to import: no jinja2, no schemas.
"""
