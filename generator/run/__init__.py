"""Run: what runs inside the site. The pull agent and the n9e apply side.

Never imports the compiler (``generator.build``): the agent image installs neither jinja2, ruamel
nor jsonschema.
"""
