"""The 8-domain evaluation suite: real labelled text from installable packages, split, tokenized, evaluated.

    from edgekit.evalsuite import SuiteConfig, load_suite
    data = load_suite(["law", "finance"], SuiteConfig(seed=0, seq_len=64))
    train_ids, train_labels, test_ids, test_labels, label_names = data["law"].arrays()

See docs/evalsuite.md for the tasks, their sources, counts and limits.
"""

from edgekit.evalsuite.data import (
    SUITE_VERSION,
    DomainCounts,
    DomainData,
    DomainTexts,
    LabelSpace,
    SuiteConfig,
    full_label_space,
    load_domain,
    load_suite,
    load_texts,
    parse_domains,
    suite_arrays,
)
from edgekit.evalsuite.sources import SourcePaths
from edgekit.evalsuite.tasks import DOMAINS, TASKS
from edgekit.evalsuite.tokenizer import HashTokenizer

__all__ = [
    "DOMAINS",
    "SUITE_VERSION",
    "TASKS",
    "DomainCounts",
    "DomainData",
    "DomainTexts",
    "HashTokenizer",
    "LabelSpace",
    "SourcePaths",
    "SuiteConfig",
    "full_label_space",
    "load_domain",
    "load_suite",
    "load_texts",
    "parse_domains",
    "suite_arrays",
]
