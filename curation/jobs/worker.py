"""What a Celery worker process does besides running tasks: it says it is alive (WorkerHeartbeat) and reaps jobs
whose worker died. Started by Celery's worker_ready signal in the worker's main process."""
import logging
import os
import threading

from django.conf import settings
from django.db import connection
from django.utils import timezone

from curation.jobs.services import jobs_reap, worker_beat, worker_gone

log = logging.getLogger(__name__)


class WorkerMonitor(threading.Thread):
    def __init__(self, *, name, queues):
        super().__init__(name="fer-worker-monitor", daemon=True)
        self.worker_name = name
        self.queues = queues
        self.started_at = timezone.now()
        self.stopping = threading.Event()

    def tick(self):
        worker_beat(name=self.worker_name, queues=self.queues, pid=os.getpid(), started_at=self.started_at)
        jobs_reap()

    def run(self):
        interval = min(settings.JOB_REAP_INTERVAL_SECONDS, settings.WORKER_SEEN_WITHIN_SECONDS / 3)
        try:
            while True:
                try:
                    self.tick()
                except Exception:  # database restarting: keep trying
                    log.exception("worker monitor tick failed")
                    connection.close()
                if self.stopping.wait(interval):
                    break
            worker_gone(name=self.worker_name)
        except Exception:
            log.exception("worker monitor stopped with an error")
        finally:
            connection.close()


_monitor = None


def on_worker_ready(sender, **kwargs):
    global _monitor
    queues = sorted(q.name for q in sender.app.amqp.queues.consume_from.values()) if sender.app.amqp.queues else []
    _monitor = WorkerMonitor(name=sender.hostname, queues=queues)
    _monitor.start()
    log.info("worker %s consuming %s is ready", sender.hostname, queues)


def on_worker_shutdown(sender, **kwargs):
    if _monitor is not None:
        _monitor.stopping.set()
        _monitor.join(timeout=10)
