"""The per-tenant product recognizer: which product does an unassigned photo
or video show?

- classifier.py: the model itself, a softmax regression over CLIP vectors, and
  its fitting (on the process's torch thread);
- training_data.py: the vectors of the tenant's assigned media and the
  held-out split (whole media, stratified by product);
- versions.py: a version's lifecycle: queued, trained with progress, its
  held-out metrics, activated, rolled back;
- predictions.py: the active version's predictions for unassigned media, at
  activation and whenever an item becomes ready (catalog.signals.media_ready);
- review.py: the review list: suggestions an operator accepts or dismisses,
  and the items a lowered auto-assign confidence assigns.
"""
