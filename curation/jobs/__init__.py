"""Background jobs: the Job row is the truth; Celery only carries 'run job N' messages.

- services.py: enqueue, cancel, and the reaper that re-queues jobs whose worker died.
- runner.py: claims a job with a conditional update and runs its handler with a heartbeat.
- registry.py: the plain dict of job kinds.
- worker.py: what a worker process does besides running tasks (liveness row, reaper loop).
"""
