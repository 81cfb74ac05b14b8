"""The in-cluster pull agent: make a cluster match its site's signed deploy branch, for months.

One reconcile (``loop.reconcile``) reads as its stages:

    source   fetch the branch (git URL) or import ferry envelopes; refuse an unsigned tip
    secrets  EncryptedSecrets decrypted with the site's age key into Secrets (generator.formats)
    plan     desired objects + the previous ApplySet -> ordered phases, prune list, guard verdicts
    prune    widen the ApplySet parent to old ∪ new (crash-safe: nothing is forgotten)
    apply    list what is live once per kind and namespace, server-side apply only what differs
    prune    delete what left the set and still carries our label; narrow the parent
    health   wait for what changed (kstatus rules), report the rest as it is
    status   status ConfigMap, Events, Prometheus metrics; then the site's n9e rules
    releases the release applied, the last healthy one; opt-in: a release that does not become
             healthy is rolled back to the last healthy one, held there until a newer one arrives

``kube`` is the only module that imports the Kubernetes client; ``plan``, ``drift`` and ``health``
are pure. The agent's own least-privilege RBAC is computed at compile time
(``generator.build.stages.agent_rbac``). Nothing here imports the compiler: the in-cluster image
needs neither jinja2 nor the schemas.
"""
