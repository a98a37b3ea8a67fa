"""The eight domain tasks: one text-classification task per domain, each built from real text that an installable
package ships. Each builder returns labelled examples; `data.py` de-duplicates, caps, splits and caches them.

| domain          | task                                              | sources                                        |
|-----------------|---------------------------------------------------|------------------------------------------------|
| healthcare      | ICD-10-CM code description -> its chapter          | PyPI simple-icd-10-cm                          |
| law             | legal term + gloss -> legal concept type          | Debian wordnet-base (topic domain "law")       |
| finance         | financial term + gloss -> financial concept       | Debian wordnet-base (hyponyms of finance roots)|
| stem            | term + definition -> its science                  | Debian wordnet-base topic domains, dict-gcide  |
| commonsense     | everyday noun + gloss -> its supersense           | Debian wordnet-base (SemCor-tagged nouns)      |
| conversational  | chat utterance -> its topic                       | PyPI chatterbot-corpus (English)               |
| multilingual    | utterance / saying -> its language                | chatterbot-corpus, Debian fortunes-de/es/it/ru/br |
| domain_adaptive | English fortune / epigram -> its topic             | Debian fortunes, tfortunes                     |
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from edgekit.errors import EdgekitError
from edgekit.evalsuite.sources import (
    SourcePaths,
    WordNet,
    chatterbot_dir,
    fortune_files,
    icd10_version,
    import_icd10,
    read_chatterbot,
    read_fortune_file,
    read_gcide,
    read_tfortunes,
    read_wordnet,
    require_fortunes,
)

DOMAINS: tuple[str, ...] = (
    "healthcare",
    "law",
    "finance",
    "stem",
    "commonsense",
    "conversational",
    "multilingual",
    "domain_adaptive",
)

MAX_TEXT_CHARS = 600  # longer texts are cut (the tokenizer keeps at most seq_len words anyway)


@dataclass(frozen=True)
class Example:
    """One labelled text. Lower `priority` is kept first when a class is capped (e.g. WordNet before GCIDE)."""

    text: str
    label: str
    priority: int = 0


@dataclass(frozen=True)
class Built:
    examples: list[Example]
    sources: dict[str, str]  # source -> version / path, recorded in the cache


@dataclass(frozen=True)
class TaskSpec:
    domain: str
    task: str
    description: str
    packages: tuple[str, ...]
    max_per_class: int
    min_per_class: int
    build: Callable[[SourcePaths], Built]


class _WordNetCache:
    """Parse WordNet once per build of several domains (law, finance, stem and commonsense all read it)."""

    def __init__(self) -> None:
        self._wn: dict[str, WordNet] = {}

    def get(self, paths: SourcePaths) -> WordNet:
        key = str(paths.wordnet)
        if key not in self._wn:
            self._wn[key] = read_wordnet(paths)
        return self._wn[key]


def _clip(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= MAX_TEXT_CHARS else text[:MAX_TEXT_CHARS].rsplit(" ", 1)[0]


def _topic_domains(wn: WordNet) -> dict[str, list]:
    """Topic-domain name (first lemma of the domain synset) -> member synsets."""
    out: dict[str, list] = {}
    for s in wn.synsets.values():
        for sym, target in s.pointers:
            if sym == ";c" and target in wn.synsets:
                out.setdefault(wn.synsets[target].words[0].lower(), []).append(s)
    return out


# ------------------------------------------------------------------------------------------------- healthcare
def build_healthcare(paths: SourcePaths) -> Built:
    cm = import_icd10(paths)
    examples = []
    for code in cm.get_all_codes(False):
        if not cm.is_category_or_subcategory(code) or cm.is_extended_subcategory(code):
            continue
        chapter = cm.get_ancestors(code)[-1]
        label = re.sub(r"\s*\([A-Z0-9-]+\)\s*$", "", cm.get_description(chapter))
        examples.append(Example(_clip(cm.get_description(code)), label))
    return Built(examples, {"simple-icd-10-cm": icd10_version(paths)})


# ------------------------------------------------------------------------------------------------------- law
LAW_CLASSES: dict[str, str] = {
    "noun.communication": "documents and pleadings",
    "noun.act": "acts and proceedings",
    "noun.event": "acts and proceedings",
    "noun.process": "acts and proceedings",
    "noun.person": "persons and roles",
    "noun.group": "courts and bodies",
    "noun.attribute": "rights, status and property",
    "noun.state": "rights, status and property",
    "noun.possession": "rights, status and property",
    "noun.relation": "rights, status and property",
    "noun.cognition": "rights, status and property",
}


def build_law(paths: SourcePaths, wn: WordNet | None = None) -> Built:
    wn = wn or read_wordnet(paths)
    examples = []
    for s in _topic_domains(wn).get("law", []):
        label = "legal actions (verbs)" if s.lexname.startswith("verb.") else LAW_CLASSES.get(s.lexname)
        if label:
            examples.append(Example(_clip(s.text()), label))
    return Built(examples, {"wordnet": f"{wn.version} ({paths.wordnet})"})


# --------------------------------------------------------------------------------------------------- finance
# Each class = the hyponym trees below these roots, found by (lemma, start of gloss) so no offsets are hard-coded.
FINANCE_ROOTS: dict[str, tuple[tuple[str, str], ...]] = {
    "securities and investments": (
        ("security", "a formal declaration that documents"),
        ("investment", "money that is invested"),
        ("stock", "the capital raised by a corporation"),
    ),
    "taxes, fees and charges": (
        ("tax", "charge against a citizen"),
        ("fee", "a fixed charge"),
        ("charge", "the price charged"),
    ),
    "loans, debt and credit": (
        ("loan", "the temporary provision of money"),
        ("debt", "money or goods or services owed"),
        ("credit", "money available for a client to borrow"),
    ),
    "financial institutions": (("financial_institution", "an institution (public or private)"),),
    "income and gains": (("financial_gain", "the amount of monetary gain"),),
    "payments": (("payment", "a sum of money paid"),),
    "money and currencies": (("currency", "the metal or paper medium"), ("monetary_unit", "a unit of money")),
    "commerce and trade": (("commerce", "transactions (sales and purchases)"),),
    "accounting and statements": (
        ("financial_statement", "a document showing credits"),
        ("accounting", "a bookkeeper's chronological"),
        ("accounting", "the occupation of maintaining"),
    ),
}


def _root(wn: WordNet, word: str, gloss_start: str):
    for s in wn.find(word):
        if s.gloss.startswith(gloss_start):
            return s
    raise EdgekitError(
        f"WordNet at {wn.version} has no synset {word!r} ({gloss_start}...): not WordNet 3.0",
        "install Debian wordnet-base (WordNet 3.0) or point EDGEKIT_WORDNET_DIR at WordNet 3.0",
    )


def build_finance(paths: SourcePaths, wn: WordNet | None = None) -> Built:
    wn = wn or read_wordnet(paths)
    owner: dict[tuple[str, str], set[str]] = {}
    for label, roots in FINANCE_ROOTS.items():
        for word, gloss in roots:
            for key in wn.hyponym_closure(_root(wn, word, gloss).key):
                owner.setdefault(key, set()).add(label)
    examples = [
        Example(_clip(wn.synsets[key].text()), next(iter(labels)))
        for key, labels in sorted(owner.items())
        if len(labels) == 1  # a synset under two roots is ambiguous: left out
    ]
    return Built(examples, {"wordnet": f"{wn.version} ({paths.wordnet})"})


# ------------------------------------------------------------------------------------------------------ stem
STEM_CLASSES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # label: (WordNet topic domains, GCIDE subject labels)
    "chemistry": (("chemistry", "biochemistry"), ("Chem.", "Biochem.")),
    "computer science": (("computer_science", "computing"), ("Computers",)),
    "biology": (("biology", "genetics", "molecular_biology"), ("Biol.", "Biology", "Genetics")),
    "physics": (
        ("physics", "nuclear_physics", "optics", "electronics"),
        ("Physics", "Opt.", "Optics", "Elec."),
    ),
    "mathematics": (
        ("mathematics", "statistics", "geometry", "algebra", "arithmetic"),
        ("Math.", "Geom.", "Alg.", "Arith."),
    ),
    "astronomy": (("astronomy", "astrophysics"), ("Astron.",)),
    "earth sciences": (
        ("geology", "meteorology", "geophysics", "mineralogy"),
        ("Geol.", "Meteor.", "Meteorol.", "Min."),
    ),
}


def build_stem(paths: SourcePaths, wn: WordNet | None = None) -> Built:
    wn = wn or read_wordnet(paths)
    topics = _topic_domains(wn)
    examples = []
    gcide_label = {}
    for label, (wn_domains, gcide_labels) in STEM_CLASSES.items():
        for d in wn_domains:
            examples += [Example(_clip(s.text()), label, priority=0) for s in topics.get(d, [])]
        gcide_label.update({g: label for g in gcide_labels})
    for sense in read_gcide(paths):
        if sense.label in gcide_label:
            examples.append(Example(_clip(sense.text()), gcide_label[sense.label], priority=1))
    return Built(examples, {"wordnet": f"{wn.version} ({paths.wordnet})", "gcide": str(paths.gcide)})


# ------------------------------------------------------------------------------------------------ commonsense
COMMONSENSE_CLASSES: tuple[str, ...] = (
    "noun.animal",
    "noun.artifact",
    "noun.body",
    "noun.feeling",
    "noun.food",
    "noun.location",
    "noun.person",
    "noun.plant",
    "noun.substance",
    "noun.time",
)


def build_commonsense(paths: SourcePaths, wn: WordNet | None = None) -> Built:
    wn = wn or read_wordnet(paths)
    wanted = set(COMMONSENSE_CLASSES)
    examples = [
        Example(_clip(wn.synsets[key].text()), wn.synsets[key].lexname.removeprefix("noun."))
        for key in sorted(wn.tagged_nouns)
        if key in wn.synsets and wn.synsets[key].lexname in wanted
    ]
    return Built(examples, {"wordnet": f"{wn.version} ({paths.wordnet})"})


# -------------------------------------------------------------------------------------------- conversational
def build_conversational(paths: SourcePaths) -> Built:
    root = chatterbot_dir(paths)
    examples = []
    for topic, utterances in sorted(read_chatterbot(root, "english").items()):
        examples += [Example(_clip(u), topic) for u in utterances if len(u.split()) >= 2]
    return Built(examples, {"chatterbot-corpus": _pkg_version("chatterbot-corpus")})


# --------------------------------------------------------------------------------------------- multilingual
# language -> chatterbot-corpus folders; fortunes folders (relative to the fortunes dir, Debian package)
MULTILINGUAL: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str, str], ...]]] = {
    "bengali": (("bengali",), ()),
    "chinese": (("chinese", "traditionalchinese"), ()),
    "dutch": (("dutch",), ()),
    "english": (("english",), ()),
    "french": (("french",), ()),
    "german": (("german",), (("de", "", "fortunes-de"),)),
    "hebrew": (("hebrew",), ()),
    "hindi": (("hindi",), ()),
    "indonesian": (("indonesian",), ()),
    "italian": (("italian",), (("it", "", "fortunes-it"),)),
    "japanese": (("japanese",), ()),
    "korean": (("korean",), ()),
    "marathi": (("marathi",), ()),
    "oriya": (("oriya",), ()),
    "persian": (("persian",), ()),
    "portuguese": (("portuguese",), (("brasil", "", "fortunes-br"),)),
    "russian": (("russian",), (("ru", "", "fortunes-ru"),)),
    "spanish": (("spanish",), (("es", ".fortunes", "fortunes-es"),)),
    "swedish": (("swedish",), ()),
    "tamil": (("tamil",), ()),
    "turkish": (("turkish",), ()),
    "ukrainian": (("ukrainian",), ()),
    "yoruba": (("yoruba",), ()),
}
_SKIP_FORTUNE_FILES = {"asciiart", "ascii-art", "banner"}


def build_multilingual(paths: SourcePaths) -> Built:
    root = chatterbot_dir(paths)
    examples = []
    for language, (folders, fortunes) in MULTILINGUAL.items():
        for folder in folders:
            if not (root / folder).is_dir():
                raise EdgekitError(
                    f"chatterbot-corpus has no {folder!r} folder at {root}",
                    "reinstall chatterbot-corpus (>= 1.2)",
                )
            for utterances in read_chatterbot(root, folder).values():
                examples += [Example(_clip(u), language) for u in utterances]
        for rel, suffix, package in fortunes:
            path = require_fortunes(paths.fortunes / rel, package)
            files = [path] if path.is_file() else fortune_files(path, suffix)
            for f in files:
                if f.name not in _SKIP_FORTUNE_FILES:
                    examples += [Example(_clip(t), language) for t in read_fortune_file(f)]
    return Built(
        examples,
        {
            "chatterbot-corpus": _pkg_version("chatterbot-corpus"),
            "fortunes": f"{paths.fortunes} (de, es, it, ru, br)",
        },
    )


# ------------------------------------------------------------------------------------------- domain_adaptive
DOMAIN_ADAPTIVE_FILES: dict[str, tuple[str, ...]] = {
    "art": ("art",),
    "computers": ("computers", "linux"),
    "drugs": ("drugs",),
    "education": ("education",),
    "food": ("food",),
    "kids": ("kids",),
    "law": ("law",),
    "literature": ("literature",),
    "love": ("love",),
    "medicine": ("medicine",),
    "men-women": ("men-women",),
    "pets": ("pets",),
    "politics": ("politics",),
    "science": ("science",),
    "sports": ("sports",),
    "startrek": ("startrek",),
    "work": ("work",),
}
TFORTUNE_TAGS: dict[str, str] = {
    **{
        t: "computers"
        for t in (
            "comp",
            "programming",
            "unix",
            "linux",
            "c",
            "c++",
            "vcs",
            "gui",
            "windows",
            "hardware",
            "microsoft",
            "filesystem",
            "perl",
            "python",
            "shell",
            "software",
            "www",
            "development",
            "security",
            "mail",
            "vi",
            "solaris",
            "apple",
            "open source",
        )
    },
    **{t: "science" for t in ("math", "physics", "biology", "logic")},
    "education": "education",
    "work": "work",
}


def build_domain_adaptive(paths: SourcePaths) -> Built:
    examples = []
    for label, names in DOMAIN_ADAPTIVE_FILES.items():
        for name in names:
            path = require_fortunes(paths.fortunes / name, "fortunes")
            examples += [Example(_clip(t), label) for t in read_fortune_file(path)]
    for entry in read_tfortunes(paths):
        labels = [TFORTUNE_TAGS[t] for t in entry.tags if t in TFORTUNE_TAGS]
        if labels:
            examples.append(Example(_clip(entry.text), labels[0]))
    return Built(examples, {"fortunes": str(paths.fortunes), "tfortunes": str(paths.tfortunes)})


def _pkg_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


TASKS: dict[str, TaskSpec] = {
    "healthcare": TaskSpec(
        "healthcare",
        "icd10-chapter",
        "ICD-10-CM code description -> chapter",
        ("simple-icd-10-cm",),
        120,
        20,
        build_healthcare,
    ),
    "law": TaskSpec(
        "law",
        "legal-concept",
        "legal term and gloss (WordNet topic 'law') -> concept type",
        ("wordnet-base",),
        250,
        20,
        build_law,
    ),
    "finance": TaskSpec(
        "finance",
        "financial-concept",
        "financial term and gloss (WordNet hyponym trees) -> concept",
        ("wordnet-base",),
        150,
        20,
        build_finance,
    ),
    "stem": TaskSpec(
        "stem",
        "science-field",
        "term and definition (WordNet topics, GCIDE labels) -> science",
        ("wordnet-base", "dict-gcide"),
        250,
        20,
        build_stem,
    ),
    "commonsense": TaskSpec(
        "commonsense",
        "noun-supersense",
        "everyday noun and gloss -> WordNet supersense",
        ("wordnet-base",),
        200,
        20,
        build_commonsense,
    ),
    "conversational": TaskSpec(
        "conversational",
        "chat-topic",
        "chatterbot-corpus utterance -> topic",
        ("chatterbot-corpus", "pyyaml"),
        200,
        40,
        build_conversational,
    ),
    "multilingual": TaskSpec(
        "multilingual",
        "language-id",
        "utterance or saying -> language",
        (
            "chatterbot-corpus",
            "pyyaml",
            "fortunes-de",
            "fortunes-es",
            "fortunes-it",
            "fortunes-ru",
            "fortunes-br",
        ),
        200,
        60,
        build_multilingual,
    ),
    "domain_adaptive": TaskSpec(
        "domain_adaptive",
        "fortune-topic",
        "fortune / epigram -> topic",
        ("fortunes", "tfortunes"),
        200,
        60,
        build_domain_adaptive,
    ),
}


def build_examples(domain: str, paths: SourcePaths, wordnet: _WordNetCache | None = None) -> Built:
    spec = TASKS[domain]
    if domain in ("law", "finance", "stem", "commonsense"):
        wn = (wordnet or _WordNetCache()).get(paths)
        return spec.build(paths, wn)  # type: ignore[call-arg]
    return spec.build(paths)
