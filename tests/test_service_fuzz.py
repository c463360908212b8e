"""Property-based API testing with schemathesis: requests generated from the service's own
OpenAPI description, valid and invalid ones, must never produce a 5xx, and every response must
match what the description promises. Bounded: a few dozen examples per operation and mode.

(The strategies are driven with Hypothesis directly: schemathesis' pytest integration,
``schema.parametrize()`` with a lazy fixture, does not work with pytest 9.)
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from genrekit.apps.service.app import create_app
from genrekit.inference.model import load_model

POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
UPLOADS = [("POST", "/v1/predict"), ("POST", "/v1/spectrogram")]
OPERATIONS = UPLOADS + [("GET", "/v1/models"), ("GET", "/healthz")]
# operations without parameters have no invalid request to generate
CASES = [(*op, POSITIVE) for op in OPERATIONS] + [(*op, NEGATIVE) for op in UPLOADS]


@pytest.fixture(scope="module")
def upload_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz-uploads")


@pytest.fixture(scope="module")
def api_schema(tiny_model_file, upload_folder):
    app = create_app(load_model(tiny_model_file), upload_dir=upload_folder, max_upload_mb=1,
                     allowed_hosts=["testserver"])  # the Host schemathesis sends
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    app.state.service.shutdown()


def test_every_operation_is_fuzzed(api_schema):
    described = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert described == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_no_server_errors_and_responses_match_the_schema(api_schema, upload_folder, method, path, mode):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        # a schema-valid upload is any bytes, and random bytes are rightly refused as audio (422)
        case.call_and_validate(excluded_checks=[positive_data_acceptance])
        assert not any(upload_folder.iterdir()), "upload left behind"

    check()
