"""The registry names each kind's handler by dotted path; the runner imports it when a job runs. A wrong path would
only show when a job of that kind ran, so every path is imported here."""
import pytest
from django.utils.module_loading import import_string

from curation.jobs.registry import JOB_KINDS


@pytest.mark.parametrize("kind", sorted(JOB_KINDS))
def test_every_kinds_handler_path_imports_to_a_function(kind):
    handler = import_string(JOB_KINDS[kind].handler)
    assert callable(handler), f"{kind}: {JOB_KINDS[kind].handler} is not callable"
