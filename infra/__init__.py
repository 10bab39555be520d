"""Infrastructure for modelsvc: pure manifest functions (catalog in, plain dicts out) and the Pulumi program.

Nothing imported here needs Pulumi: the CLI uses `infra.render` and `infra.modelrepo` without it.
The Pulumi program lives in `infra/program.py` (entry point `infra/__main__.py`, see Pulumi.yaml).
"""
