"""The git layer: the only package that imports gitpython (or runs git).

Each module wraps git errors where they enter (``raise GenError(...) from e``) and says which
repository, ref or commit was involved. Nothing here imports the compiler.
"""
