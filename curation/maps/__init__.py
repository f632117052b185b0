"""The dataset map: a 2-D projection of the embeddings of the model feeding a dataset's queue (project.py), computed
by the map_dataset job (params.py, handler.py) and stored beside nothing else (store.py), drawn in the browser from
a compact binary form (store.map_payload), with the images a user lassoes stored as a selection the grid can show
(selections.py)."""
