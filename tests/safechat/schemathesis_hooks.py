"""schemathesis hooks of the API's contract run (``tests/safechat/schemathesis.toml``).

Loaded by ``st run`` (``hooks`` in the configuration), not by pytest. Each hook states
what the OpenAPI schema cannot say, and nothing more.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

# A tus PATCH carries raw bytes (application/offset+octet-stream), which schemathesis
# does not generate by itself: any bytes, a few KiB at most.
schemathesis.openapi.media_type("application/offset+octet-stream", st.binary(max_size=4096))


# The id of the token the run authenticates with (set by the test).
OWN_TOKEN_ID = os.environ.get("SAFECHAT_CONTRACT_TOKEN_ID", "")


@schemathesis.hook
def filter_case(ctx: Any, case: schemathesis.Case[Any]) -> bool:
    """Leave out two kinds of request:

    - a valid-looking one that sends both ``before`` and ``after``: they exclude each
      other (400 ``exclusive``, tests/safechat/test_api_pagination.py), a rule between
      parameters that OpenAPI 3.0 cannot state, so schemathesis would take the pair for
      valid input (requests meant to be invalid keep it);
    - the revocation of the run's own token: every later request would rightly be a 401
      and test nothing more (revocation has its own tests, tests/accounts/test_tokens.py).
    """
    query = case.query or {}
    both = "before" in query and "after" in query
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if both and positive:
        return False
    path = case.path_parameters or {}
    revokes = case.operation.label == "DELETE /api/v1/accounts/tokens/{token_id}/"
    return not (revokes and str(path.get("token_id")) == OWN_TOKEN_ID)
