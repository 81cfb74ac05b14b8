"""Monitoring as code, apply side: push a site's compiled n9e files into its Nightingale.

``client`` (the HTTP API) and ``reconcile`` (plan and apply), used by ``gen n9e apply`` and the
in-cluster agent. The compiled format is ``generator.formats.n9e``.
"""
