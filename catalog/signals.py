"""Events of the catalog that higher apps act on, without the catalog or the
pipeline importing them (DESIGN.md "Which way imports run")."""

from django.dispatch import Signal

# Sent once media items became `ready` and their vectors, frames and
# near-duplicate links are stored (by media_pipeline), with `media`: the items
# (their tenant loaded). The recognizer predicts the products of unassigned
# ones (search/recognizer/predictions.py). Receivers run in the worker, after
# commit; one that fails is logged and leaves the items ready.
media_ready = Signal()
