"""Build: the compiler, outside the air gap. inventory -> schemas -> render -> stages -> write.

    inventory/      Kapitan/reclass classes and targets, merged and resolved with locations
    schemas         JSON Schema check of every target, defaults filled in
    components      a component type's own parameters (components/<name>/schema.json), composed
                    with schemas/; component_checks: the cross-checks a component names
    render          jinja2 components -> Kubernetes objects
    stages/         the steps of one site's compile (parameters, secrets, render, agent RBAC,
                    monitoring, manifests, site files); a new compile feature is a new stage
    kube_schema     the Kubernetes OpenAPI check of every object for the site's version
    pipeline        the list of stages, for every site, all or nothing
    write, cache    the atomic compiled/ tree, and what lets an unchanged site be skipped

Nothing in ``generator.deliver`` or ``generator.run`` imports this package: the in-cluster image
needs neither jinja2, ruamel nor the schemas.
"""
