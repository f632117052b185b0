"""Celery tasks: thin. They take ids and call one service."""
from celery import shared_task
from celery.signals import worker_ready, worker_shutdown

from curation.jobs.runner import job_run, worker_label
from curation.jobs.services import RUN_JOB_TASK
from curation.jobs.worker import on_worker_ready, on_worker_shutdown

worker_ready.connect(on_worker_ready)
worker_shutdown.connect(on_worker_shutdown)


@shared_task(name=RUN_JOB_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id):
    job_run(job_id=job_id, worker=worker_label())
