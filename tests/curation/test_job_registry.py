"""The registry names each kind's handler by dotted path; the runner imports it when a job runs. A wrong path would
only show when a job of that kind ran, so every path is imported here. Handlers live in modules named for it
(handler.py, or <kind>_handler.py beside the package's other kinds), which the web process never imports
(tests/test_web_no_torch.py)."""
import pytest
from django.utils.module_loading import import_string

from curation.jobs.registry import JOB_KINDS


@pytest.mark.parametrize("kind", sorted(JOB_KINDS))
def test_every_kinds_handler_path_imports_to_a_function(kind):
    handler = import_string(JOB_KINDS[kind].handler)
    assert callable(handler), f"{kind}: {JOB_KINDS[kind].handler} is not callable"


def test_every_handler_lives_in_a_handler_module_and_every_validator_in_a_params_module():
    for kind, job_kind in JOB_KINDS.items():
        module = job_kind.handler.rpartition(".")[0]
        assert module.rpartition(".")[2].endswith("handler"), f"{kind}: handler in {module}"
        assert job_kind.validate.__module__.rpartition(".")[2].endswith("params"), \
            f"{kind}: validator in {job_kind.validate.__module__}"
