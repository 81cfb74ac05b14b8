"""Monitoring as code, compiler side: n9e rules and notifications per site.

``builtin`` (the built-in rule sets), ``rules`` (parameters -> rules), ``files`` (rules ->
``compiled/<site>/n9e/``). The format they write is ``generator.formats.n9e``; applying it to a
site's n9e is ``generator.run.n9e``.
"""
