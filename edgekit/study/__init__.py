"""Studies that chain the toolchain end to end. `fragility`: specialise a general model, compress it, and measure
what specialisation and compression cost elsewhere (DSI, GG, CDTR), then check the paper's claims. docs/study.md."""

from edgekit.study.claims import Claim
from edgekit.study.config import COMPRESSIONS, Compression, StudyConfig
from edgekit.study.fragility import StudyResult, VariantMetrics, VariantRecord, run_study

__all__ = ["COMPRESSIONS", "Claim", "Compression", "StudyConfig", "StudyResult", "VariantMetrics", "VariantRecord",
           "run_study"]
