"""The project's real LightRAG working dirs (read-only), beside the checkout unless HYBRIDRAG_REALDATA says."""

import os
from pathlib import Path

from hybridrag_backends.testing import lightrag_dirs

CHECKOUT = Path(__file__).resolve().parents[3]
REALDATA = Path(os.environ.get("HYBRIDRAG_REALDATA", CHECKOUT.parent / "shared" / "realdata"))
REALDATA_DIRS = lightrag_dirs(REALDATA)  # (working dir, workspace) pairs
