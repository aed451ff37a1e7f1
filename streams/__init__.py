"""journey: per-user lifecycle state, churn warnings and recall triggers from storefront events."""

import os as _os

# The model fits work on small arrays, where BLAS threads only contend with the stream
# loop for the same cores (a fit measured 12x slower with them on a busy 2-core host).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
