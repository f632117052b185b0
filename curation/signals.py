"""Signals the core sends about its writes, for the stored figures that depend on them (curation/apps.py connects
the receivers).

label_changed: sent by curation.services.image_label_change for every confirm, relabel, exclude and undo, inside
its transaction, after the image row and its LabelChange are written, with `image` (the Image as it was before the
change: dataset_id, split, original_label, label, status) and `change` (the LabelChange: old and new label and
status). A receiver's writes commit or roll back with the change itself, so a stored figure never counts a change
that did not happen, nor misses one that did; a receiver that raises fails the change.
"""
from django.dispatch import Signal

label_changed = Signal()
