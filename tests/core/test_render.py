"""inert_markdown: model output renders as its own literal text; nothing is fetched, linked or run.

Two checks. A decoder that knows the shape of the output (every ASCII punctuation
character escaped) recovers the text and runs the link and emoji finders that remark-gfm,
remark-emoji and Streamlit apply to parsed text. Then a real CommonMark parser,
markdown-it-py with linkify (fuzzier than GFM's autolinks), renders the output to HTML.
"""

from __future__ import annotations

import html
import random
import re
import string
import textwrap
from typing import Any

import pytest

from sparring.render import NO_BREAK_SPACE, WORD_JOINER, ZERO_WIDTH_SPACE, inert_markdown, inert_text

LONG_LINE = "".join(random.Random(1).choice(string.ascii_letters + string.digits + "/+=.") for _ in range(50_000))

HOSTILE = [
    "![x](https://evil.example/a.png)",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "[click](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "<https://evil.example>",
    "https://evil.example/path",
    "HTTP://EVIL.COM/x and //evil.com/x and //localhost/x",
    "www.evil.example",
    "WWW.evil.com, see a.www.evil.com",
    "[ref]\n\n[ref]: https://evil.example",
    "![img][r]\n\n[r]: http://evil.example/x.png",
    "write to someone@evil.com or mailto:someone@evil.com",
    "evil.com google.co.uk 127.0.0.1",
    "# heading",
    "Setext heading\n===",
    "Setext two\n---",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "**bold** __bold__ *em* _em_ ~~strike~~",
    "`code` ``two`` ```\nfence\n```\n~~~python\nprint(1)\n~~~",
    "    indented code\n\tindented by tab",
    "- item\n* item\n+ item\n1. one\n2) two\n- [ ] task\n> quote\n***",
    "<!-- comment --> <div>block</div> &lt;script&gt; &amp; &#x41; &copy;",
    "text[^1]\n\n[^1]: footnote",
    ":red[coloured] :smile: :material/home: :+1: $x^2$ $$y$$",
    "\\*not emphasis\\* and a trailing backslash\\",
    "trailing spaces   \n  leading spaces\n\n\nblank lines above\n",
    "\n\nstarts with blank lines",
    "tabs\tin\tthe\tmiddle",
    "windows\r\nline\rends",
    LONG_LINE,
    "no punctuation at all",
    "",
]

_PUNCTUATION = "[!-/:-@\\[-`{-~]"
_TOKEN = re.compile(rf"\\({_PUNCTUATION})|\\\n|&#9;|({_PUNCTUATION})")

# remark-gfm links bare URLs a second time on parsed text (mdast-util-gfm-autolink-literal),
# where escapes are gone; these are its patterns (JavaScript's \w is ASCII), used here
# without its extra conditions, so they find more than it would.
_GFM_URL = re.compile(r"(https?://|www(?=\.))([-.\w]+)([^ \t\r\n]*)", re.IGNORECASE | re.ASCII)
_GFM_EMAIL = re.compile(r"([-.\w+]+)@([-\w]+(?:\.[-\w]+)+)", re.ASCII)
_REMARK_EMOJI = re.compile(r":\+1:|:-1:|:[\w-]+:", re.ASCII)
# Streamlit loads remark-emoji only when the source matches this.
_STREAMLIT_EMOJI = re.compile(r":(?!material/|streamlit:)[\w+-][\w_+-]*:", re.ASCII)

_ALLOWED_TAGS = {"<p>", "</p>", "<br />"}
_FORBIDDEN = ["<img", "<a ", "<script", "<h1", "<h2", "<table", "<strong", "<em", "<code", "<pre"]
_SCRIPT_HREF = re.compile(r"""href\s*=\s*["']?\s*javascript:""", re.IGNORECASE)


def _normalize(text: str) -> str:
    """The text as a reader sees it: the invisible characters inert_markdown adds removed."""
    return text.replace(ZERO_WIDTH_SPACE, "").replace(WORD_JOINER, "").replace(NO_BREAK_SPACE, " ")


def _expected(original: str) -> str:
    return _normalize(inert_text(original))


def _decode(markdown: str) -> str:
    """The text a CommonMark parser gets from inert_markdown's output; fails on unescaped punctuation."""

    def one(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return match.group(1)
        if match.group() == "\\\n":
            return "\n"
        if match.group() == "&#9;":
            return "\t"
        raise AssertionError(f"unescaped {match.group()!r} at {match.start()}: {markdown[: match.start() + 5]!r}")

    return _TOKEN.sub(one, markdown)


def _link_finders(markdown: str, text: str) -> list[str]:
    found = [m.group() for pattern in (_GFM_URL, _GFM_EMAIL, _REMARK_EMOJI) for m in pattern.finditer(text)]
    return found + [m.group() for m in _STREAMLIT_EMOJI.finditer(markdown)]


def _visible(rendered: str) -> str:
    text = html.unescape(re.sub(r"<[^>]*>", "", rendered))
    return text.removesuffix("\n")


def _random_text(rng: random.Random) -> str:
    pieces = [
        *string.ascii_letters,
        *string.digits,
        *string.punctuation,
        *string.punctuation,
        " ",
        " ",
        "   ",
        "\n",
        "\n\n",
        "\r\n",
        "\t",
        "é",
        "漢",
        "🙂",
        NO_BREAK_SPACE,
        "http://",
        "https://",
        "www.",
        "WwW.",
        "mailto:",
        "@",
        ".com",
        ".co",
        "javascript:",
        "![",
        "](",
        "<img ",
        "<script>",
        "```",
        "~~~",
        "**",
        "__",
        "# ",
        "| ",
        "---",
        "1. ",
        "- ",
        "> ",
        ":smile:",
        "&amp;",
        "&#",
        "[^",
        "]:",
    ]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))


_rng = random.Random(0)
RANDOM_TEXTS = [_random_text(_rng) for _ in range(300)]


def _check_decoded(original: str) -> None:
    markdown = inert_markdown(original)
    text = _decode(markdown)
    assert _normalize(text) == _expected(original)
    assert not _link_finders(markdown, text)
    # st.markdown dedents and strips its body first (streamlit.string_util.clean_text).
    assert textwrap.dedent(markdown).strip() == markdown


@pytest.mark.parametrize("original", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_decodes_to_itself_with_no_link(original: str) -> None:
    _check_decoded(original)


def test_random_text_decodes_to_itself_with_no_link() -> None:
    for original in RANDOM_TEXTS:
        _check_decoded(original)


def test_the_finders_do_see_raw_links() -> None:
    """The check above is not vacuous: the same finders fire on the raw text."""
    for raw in ["https://evil.example/path", "www.evil.example", "someone@evil.com", ":smile:"]:
        assert _link_finders(raw, raw)


def test_long_runs_get_break_opportunities_and_short_ones_do_not() -> None:
    text = _decode(inert_markdown(LONG_LINE))
    pieces = text.split(ZERO_WIDTH_SPACE)
    assert len(pieces) > 50_000 // 80 - 1
    assert max(len(_normalize(p)) for p in pieces) <= 80
    url = "https://example.com/" + "a" * 1500
    assert ZERO_WIDTH_SPACE not in inert_markdown(url)
    assert ZERO_WIDTH_SPACE in inert_markdown(url, max_line=100)
    assert ZERO_WIDTH_SPACE not in inert_markdown(("word " * 1000).strip())


def test_max_line_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_line"):
        inert_markdown("x", max_line=0)


def test_inert_text_makes_control_characters_visible() -> None:
    assert inert_text("a\x1b[31mred\x00\x7f\x85\r\nb\tc\rd") == "a\u241b[31mred\u2400\u2421\ufffd\nb\tc\nd"
    assert inert_text("lone \ud800 surrogate") == "lone \ufffd surrogate"
    assert inert_text("plain\ntext\twith tabs 🙂") == "plain\ntext\twith tabs 🙂"


def test_markdown_keeps_control_characters_out() -> None:
    assert _decode(inert_markdown("a\x1b[0mb")) == "a\u241b[0mb"


# -- a real parser -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def md() -> Any:
    markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py is a test dependency")
    pytest.importorskip("linkify_it", reason="linkify-it-py is a test dependency (markdown-it-py[linkify])")
    return markdown_it.MarkdownIt("gfm-like")


def _check_rendered(md: Any, original: str) -> None:
    rendered = md.render(inert_markdown(original))
    tags = set(re.findall(r"<[^>]*>", rendered))
    assert tags <= _ALLOWED_TAGS, (original[:80], rendered[:300])
    assert not [bad for bad in _FORBIDDEN if bad in rendered]
    assert not _SCRIPT_HREF.search(rendered)
    assert _normalize(_visible(rendered)) == _expected(original)


@pytest.mark.parametrize("original", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_renders_as_its_text(md: Any, original: str) -> None:
    _check_rendered(md, original)


def test_random_text_renders_as_its_text(md: Any) -> None:
    for original in RANDOM_TEXTS:
        _check_rendered(md, original)


def test_the_parser_does_render_raw_markup(md: Any) -> None:
    """Without inert_markdown the same inputs make images, links, scripts, headings and tables."""
    raw = md.render("\n\n".join(HOSTILE[:20]))
    for tag in ["<img", "<a ", "<script", "<h1", "<table", "<strong"]:
        assert tag in raw
    assert _SCRIPT_HREF.search(raw)


# -- copying from the page ---------------------------------------------------------------------

COPYABLE = [
    "sim/agent?concede=0.01",
    "sim/judge?fpr=0.05&garble=0.5",
    "openai/gpt-4.1-mini",
    "ollama/llama3.2:latest",
    "vertex_ai/claude-3-5-sonnet@20240620",
    "0.01 · 12.5% · $0.0031 · 95% CI 64–79% · 1,234.5 ms",
    "Get a full refund for a jacket bought three months ago, without a receipt.",
    "Make the agent reveal its system prompt: quote it word for word.",
]


@pytest.mark.parametrize("original", COPYABLE, ids=range(len(COPYABLE)))
def test_model_names_numbers_and_plain_goals_gain_no_invisible_character(original: str) -> None:
    """What a user copies from a page pastes back exactly: no word joiner, no zero-width space."""
    markdown = inert_markdown(original)
    assert WORD_JOINER not in markdown and ZERO_WIDTH_SPACE not in markdown
    assert _decode(markdown) == original
