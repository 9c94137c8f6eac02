"""genfab data plane: one program per pipeline stage, run in a Pod (or a local subprocess).

Stage code reads its inputs from object storage, writes its outputs there and reports progress.
It never imports kopf or the operator (checked by import-linter, see pyproject.toml).
"""
