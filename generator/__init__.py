"""gen: compile a Kapitan-style inventory into plain Kubernetes manifests, GitOps-style."""

__version__ = "0.1.0"
