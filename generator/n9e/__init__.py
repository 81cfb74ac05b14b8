"""Monitoring as code for Nightingale (n9e): rules compiled per site, and applied to a site's n9e.

Compiler side (called by ``generator.compile``): ``builtin`` (the built-in rule sets), ``rules``
(parameters -> rules), ``files`` (rules -> ``compiled/<site>/n9e/``). Apply side (used by
``gen n9e apply`` and the in-cluster agent; depends only on ``generator.core``): ``client`` (the
HTTP API) and ``reconcile`` (plan and apply). ``model`` is shared. This package imports none of its
modules eagerly, so the apply side never loads jsonschema.
"""
