"""The book's prose pages read as a reviewer would read them, checked on their MyST source (no build needed).

**No typed result numbers.** Every number about this study's results must be glued from the run. A number
left in the prose of ``book/*.md`` after the following is removed counts as typed, and fails the test:

- what is not prose: code blocks and the arguments and options of directives (a ``{figure}``'s caption is
  kept and checked), math (``$...$``, ``$$...$$``), MyST roles (``{glue:text}``, ``{cite:p}``, ``{doc}``,
  ``{ref}``), labels, links, and code spans that quote code (they hold a letter, ``=`` or ``/``: a parameter
  or a command, not a measurement; a code span holding only a number is checked like prose);
- the two tables whose every value a test below checks against its source: the profile table of
  ``reproducibility.md`` (against ``profiles.yaml``) and Table 1 of ``methods.md`` (against
  ``metabolites.yaml``);
- quotations of the paper: a sentence that names the paper (``paper``) or its authors (``authors'``), and
  a table cell under a column headed ``paper``; and quotations of the literature: a sentence that cites its
  source (a ``{cite:...}`` role);
- numbers that are not results: years (1900-2099), matrix and kernel sizes written ``N x N``, two-digit
  notebook numbers (``01``), numbers after ``Figure``/``Table``/``notebook``, and the method facts of
  :data:`ALLOWED` (each a deliberate entry: a field strength, a unit range, a test threshold, ...).

**Captions.** Every caption of a figure or of a glued table names the run's profile and its data, both
glued (a ``{glue:text}`` of a ``*_profile`` and of a ``*_data`` key).

**Links.** Every ``{cite}`` key of the pages and the notebooks' prose is in ``references.bib``; every
``{doc}`` target exists; every ``{ref}`` label is defined on some page.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from mrsisr.maps.synthesis import literature_values
from mrsisr.study.profiles import declared_parameters, defaults, load_profile, profile_names

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
PAGES = sorted(BOOK.glob("*.md"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

#: Method facts that are numbers but not results (a regex each, matched in prose).
ALLOWED = (
    r"\b7 ?T\b",  # the field strength of the validation data
    r"\b1 mm\b",  # the grid of BraTS
    r"\[-?[01], 1\]",  # the maps' and LPIPS's value ranges
    r"\bp < 0\.05\b",  # the significance threshold
    r"\brange(?: of)? 1\b",  # the nominal range of the metrics
    r"\bv0\.1\b",  # the LPIPS version
    r"\bKeras 3\b",
    r"\b2-core\b",
    r"\(choline 9, creatine and NAA 3\)",  # the protons behind each peak
)
REFERENCE_WORDS = r"(?:Figures?|Tables?|notebooks?|Section)"
NUMBER = re.compile(r"(?<![\w.])[-+−]?\d+(?:[.,]\d+)*(?:e-?\d+)?%?(?![\w])")
ATTRIBUTION = re.compile(r"\bpaper|\bauthors'|\[cited\]", re.IGNORECASE)
VERIFIED_TABLES = {"reproducibility.md": "(profile-table)=", "methods.md": "(table1)="}


def _strip_non_prose(text: str) -> str:
    """The page's prose: code, math, roles, labels, links and directive options removed (captions kept)."""
    kept = []
    fence = None
    for line in text.splitlines():
        opening = re.match(r"^(`{3,}|:{3,})\s*(\{(\w+)\})?", line)
        if fence is None and opening:
            fence = (opening.group(1), opening.group(3))
            kept.append("")
            continue
        if fence is not None and line.strip() == fence[0]:
            fence = None
            kept.append("")
            continue
        if fence is not None:
            keep = fence[1] == "figure" and not line.startswith(":")
            kept.append(line if keep else "")
            continue
        kept.append(line)
    prose = "\n".join(kept)
    prose = re.sub(r"\$\$.*?\$\$", " ", prose, flags=re.S)
    prose = re.sub(r"\$[^$\n]+\$", " ", prose)
    prose = re.sub(r"\{cite:\w+\}`[^`]*`", " [cited] ", prose)  # a citation attributes its sentence's numbers
    prose = re.sub(r"\{[\w:-]+\}`[^`]*`", " ", prose)
    prose = re.sub(r"`([^`]*)`", lambda m: " " if re.search(r"[A-Za-z=/]", m.group(1)) else m.group(1), prose)
    prose = re.sub(r"^\([\w-]+\)=\s*$", "", prose, flags=re.M)
    prose = re.sub(r"\]\([^)]*\)|https?://\S+", " ", prose)
    return prose


def _drop_verified_table(text: str, page: str) -> str:
    marker = VERIFIED_TABLES.get(page)
    if marker is None or marker not in text:
        return text
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip() == marker)
    start = next(i for i in range(first, len(lines)) if lines[i].startswith("| "))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[:start] + lines[end:])


def _table_cells(block: list[str]) -> list[str]:
    """The cells of a markdown table that are not quotations of the paper (columns headed ``paper``)."""
    header = [cell.strip() for cell in block[0].strip("|").split("|")]
    cells = []
    for row in block[2:]:
        for name, cell in zip(header, row.strip().strip("|").split("|"), strict=False):
            if not ATTRIBUTION.search(name):
                cells.append(cell)
    return cells


def _sentences(prose: str) -> list[str]:
    """Sentences of the prose; every table cell (outside the paper's columns) counts as one."""
    pieces, paragraph, table = [], [], []
    for line in [*prose.splitlines(), ""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            pieces += _table_cells(table)
            table = []
        if line.strip():
            paragraph.append(line.strip())
        elif paragraph:
            pieces += re.split(r"(?<=[.;!?])\s+(?=[A-Z(*])", " ".join(paragraph))
            paragraph = []
    return pieces


def typed_numbers(text: str, page: str = "") -> list[str]:
    """The typed result numbers of a page's MyST source, each with its sentence (rule in the module docstring)."""
    found = []
    for sentence in _sentences(_strip_non_prose(_drop_verified_table(text, page))):
        if ATTRIBUTION.search(sentence):
            continue
        cleaned = sentence
        for pattern in ALLOWED:
            cleaned = re.sub(pattern, " ", cleaned)
        cleaned = re.sub(r"\b\d+(?: x \d+)+\b", " ", cleaned)
        cleaned = re.sub(rf"{REFERENCE_WORDS}\s+\d+", " ", cleaned)
        for match in NUMBER.finditer(cleaned):
            token = match.group(0)
            if re.fullmatch(r"(19|20)\d\d", token) or re.fullmatch(r"0\d", token):
                continue
            found.append(f"{token!r} in: {sentence.strip()[:160]}")
    return found


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_no_typed_result_numbers(path):
    typed = typed_numbers(path.read_text(encoding="utf-8"), path.name)
    assert not typed, f"{path.name} types result numbers; glue them from the run:\n" + "\n".join(typed)


def test_the_rule_catches_a_typed_result_and_spares_the_papers_values():
    assert typed_numbers("The network reached 27.48 dB against 26.05 dB for the spline.")
    assert typed_numbers("Our gain is `1.43` dB.")
    assert typed_numbers("| method | ours |\n|---|---|\n| model | 0.834 |\n")
    assert not typed_numbers("The paper reports 29.57 dB for its network and 23.28 dB for the spline.")
    assert not typed_numbers("Grey matter holds 8.0-8.9 mM NAA {cite:p}`pouwels1997`.")
    assert not typed_numbers("| what | paper | ours |\n|---|---|---|\n| epochs | 100 | `epochs` |\n")
    assert not typed_numbers("We upscale 32 x 32 maps to 128 x 128 (Figure 3, notebook 04, BraTS 2020).")
    assert not typed_numbers("It reached {glue:text}`executed/04_evaluation.ipynb::evaluation_psnr_model:.2f` dB.")
    assert not typed_numbers("$$\nC = 10 \\log_{10}(1/\\mathrm{MSE})\n$$\n\n```bash\nmrsisr run --set epochs=5\n```\n")


def _captions(text: str) -> list[str]:
    """Captions of figures (the directive's body) and of glued tables (the paragraph after the glue block)."""
    captions = re.findall(r"```\{figure\}[^\n]*\n(.*?)\n```", text, flags=re.S)
    for match in re.finditer(r"```\{glue\}[^\n]*\n.*?\n```\n\n(.*?)(?:\n\n|\Z)", text, flags=re.S):
        captions.append(match.group(1))
    return captions


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_every_caption_names_the_profile_and_the_data(path):
    for caption in _captions(path.read_text(encoding="utf-8")):
        glued = re.findall(r"\{glue:text\}`[^`]*::(\w+)", caption)
        assert any(key.endswith("_profile") for key in glued), f"{path.name}: no glued profile in: {caption[:120]}"
        assert any(key.endswith("_data") for key in glued), f"{path.name}: no glued data source in: {caption[:120]}"


def test_the_landing_page_gives_the_verdict_with_a_figure():
    text = (BOOK / "index.md").read_text(encoding="utf-8")
    assert "evaluation_verdict:s" in text and "```{glue} evaluation_verdict_table" in text
    assert "evaluation_data" in text and "validation_7t_data" in text
    assert re.search(r"```\{figure\} executed/figures/\w+\.png", text), "the landing page shows no figure"
    assert "MorEsm/SR-MRSI" in text


def _all_sources() -> dict[str, str]:
    sources = {path.name: path.read_text(encoding="utf-8") for path in PAGES}
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        sources[path.name] = "\n\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    return sources


def test_every_citation_is_in_the_bibliography():
    bib = set(re.findall(r"^@\w+\{([^,]+),", (BOOK / "references.bib").read_text(encoding="utf-8"), flags=re.M))
    for name, text in _all_sources().items():
        for keys in re.findall(r"\{cite:\w+\}`([^`]+)`", text):
            missing = {key.strip() for key in keys.split(",")} - bib
            assert not missing, f"{name} cites {sorted(missing)}, which book/references.bib lacks"


def test_every_doc_and_ref_target_exists():
    sources = _all_sources()
    labels = set()
    for text in sources.values():
        labels |= set(re.findall(r"^\(([\w-]+)\)=", text, flags=re.M))
        labels |= set(re.findall(r"^:name: ([\w-]+)", text, flags=re.M))
    notebooks = {path.stem for path in NOTEBOOKS}
    for name, text in sources.items():
        in_notebook = name.endswith(".ipynb")
        for target in re.findall(r"\{doc\}`(?:[^`<]*<)?([^`>]+)>?`", text):
            stem = target.removeprefix("executed/")
            exists = (
                stem in notebooks if in_notebook or target.startswith("executed/") else (BOOK / f"{target}.md").exists()
            )
            assert exists, f"{name}: {{doc}} target {target!r} does not exist"
        for target in re.findall(r"\{ref\}`(?:[^`<]*<)?([^`>]+)>?`", text):
            assert target in labels, f"{name}: {{ref}} label {target!r} is defined nowhere"


def _table_after(text: str, marker: str) -> list[list[str]]:
    lines = text[text.index(marker) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _shown(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)


def test_the_profile_table_agrees_with_profiles_yaml():
    rows = _table_after((BOOK / "reproducibility.md").read_text(encoding="utf-8"), "(profile-table)=")
    declared, default = declared_parameters(), defaults()
    profiles = {name: load_profile(name) for name in profile_names()}
    assert sorted(profiles) == ["ci", "demo", "paper"]
    differing = [
        name for name in declared if len({_shown(default[name]), *(_shown(p[name]) for p in profiles.values())}) > 1
    ]
    assert [row[0].strip("`") for row in rows] == differing, "the table must list exactly the parameters that differ"
    for row in rows:
        name = row[0].strip("`")
        expected = [", ".join(declared[name].stages), _shown(default[name])]
        expected += [_shown(profiles[p][name]) for p in ("ci", "demo", "paper")]
        assert row[1:] == expected, f"reproducibility.md, row {name}: {row[1:]} but profiles.yaml gives {expected}"


def test_table1_agrees_with_metabolites_yaml():
    rows = _table_after((BOOK / "methods.md").read_text(encoding="utf-8"), "(table1)=")
    values = literature_values()
    tissues = {"grey matter": "GM", "white matter": "WM"}
    checked = 0
    for tissue, quantity, quoted, drawn, *_ in rows:
        if tissue in tissues:
            entry = values["concentrations"][tissues[tissue]][quantity]
            assert quoted == f"{entry['mean']:.1f}" and drawn == "-".join(f"{v:.1f}" for v in entry["range"]), tissue
            checked += 1
        elif tissue.startswith("tumour, "):
            ratio = quantity.removesuffix(" peak ratio")
            entry = values["tumour_peak_ratios"][ratio][tissue.removeprefix("tumour, ")]
            assert drawn == "-".join(f"{v:.1f}" for v in entry["range"]), f"{tissue} {quantity}"
            checked += 1
    assert checked == 10
    text = "\n".join(" ".join(row) for row in rows)
    for name, factor in (("necrosis_fraction", "x white matter"), ("oedema_dilution", "x white matter")):
        assert f"{values['assumptions'][name]['value']:g} {factor}" in text, name
    assert f"{values['assumptions']['ratio_floor_mM']['value']:g} mM" in text
