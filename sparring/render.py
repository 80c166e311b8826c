"""Model output made safe to show: text in, markdown out that renders as that very text.

Transcripts are written by the models under test and by the adversary, so they are
hostile input. The app shows them with ``st.markdown`` (react-markdown + remark-gfm, plus
Streamlit's own directives, emoji shortcodes and LaTeX), which would fetch ``![](...)``
images, make links clickable, and turn ``# text`` or ``| a | b |`` into headings and
tables. ``inert_markdown`` returns markdown that shows the original characters instead:

- every ASCII punctuation character is backslash-escaped (CommonMark allows that before
  any of them), so no markdown construct can start: no image, link, reference, autolink
  ``<...>``, raw HTML, entity, emphasis, code, heading, list, quote, table, footnote,
  directive (``:red[...]``) or math (``$...$``);
- GFM also turns bare ``https://x``, ``www.x`` and ``a@b.c`` into links, and does it twice:
  once while parsing (defeated by the escapes) and once more on the parsed text, where
  escapes are already gone (``mdast-util-gfm-autolink-literal``). Remark-emoji likewise
  matches ``:name:`` on the parsed text. Against those, an invisible U+2060 WORD JOINER
  goes exactly where a link or emoji finder could otherwise start or continue a match:
  between ``//``, between ``www`` and its dot, after a dot followed by a letter (a host
  name's next label, ``evil.com``), after an ``@`` followed by a dotted domain, and after
  the first colon of ``:name:``. It is neither a letter nor a dot, so no linkifier (GFM's,
  or markdown-it's fuzzier one) sees a scheme, a host or a top-level domain any more.
  Escaping alone is not enough for this second pass. Nowhere else: text that a user
  copies from a page (a model name such as ``sim/agent?concede=0.01``, a number, a goal
  without a web address) must paste back exactly, and U+2060 has no width, so a reader
  cannot see that it is there.
- each newline is a hard line break (backslash + newline); an empty line keeps a word
  joiner so it does not end the paragraph (a blank line would);
- spaces that HTML or markdown would swallow (at the start or end of a line, or a run of
  several) become no-break spaces, so indentation stays visible and an indented line
  is not a code block; a tab becomes the reference ``&#9;`` (a tab, not indentation);
- a run of more than ``max_line`` characters with no space (a 50,000-character line, a
  base64 blob) gets a zero-width space every 80 characters, so the browser can wrap it.
  Shorter runs are left whole (Streamlit's markdown CSS already wraps long words) so a
  URL or an identifier copies as it was.

The only characters added are U+2060, U+200B and U+00A0: remove the first two and map
the third to a space to get the text back. Input fields strip the first two (and the other
zero-width format characters) from what is pasted into them (``sparring.validation``).
"""

from __future__ import annotations

import re
from collections.abc import Collection

WORD_JOINER = "\u2060"
ZERO_WIDTH_SPACE = "\u200b"
NO_BREAK_SPACE = "\u00a0"
BREAK_EVERY = 80

# C0 controls except tab and newline, DEL, C1 controls, and lone surrogates (which
# cannot be encoded to UTF-8 and would make Streamlit fail to send the page).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_PUNCTUATION = re.compile(r"[!-/:-@\[-`{-~]")
_LEADING_SPACES = re.compile(r"^ +")
_TRAILING_SPACES = re.compile(r" +$")
_SPACE_RUN = re.compile(r" {2,}")
_TAB_ENTITY = "&#9;"


def inert_text(text: str) -> str:
    """``text`` for plain-text display: newlines normalised to ``\\n``, control characters visible.

    A C0 control becomes its Control Picture (ESC shows as ␛, so an injected terminal
    escape sequence is visible rather than acted on); DEL becomes ␡; C1 controls and lone
    surrogates become U+FFFD. Tabs and newlines are kept.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub(_control_picture, text)


def inert_markdown(text: str, max_line: int = 2000) -> str:
    """Markdown that renders as the literal ``text``: nothing fetched, linked, or interpreted.

    ``max_line``: runs of more than this many characters without a space get a zero-width
    space every ``min(80, max_line)`` characters so that they can wrap.
    """
    if max_line < 1:
        raise ValueError("max_line must be at least 1")
    text = inert_text(text)
    if not text:
        return ""
    body = "\\\n".join(_inert_line(line, max_line) for line in text.split("\n"))
    # st.markdown strips the body (str.strip, which counts no-break spaces as space) and
    # markdown parsers trim paragraphs: a word joiner at either end keeps edge spaces.
    if body[0].isspace():
        body = WORD_JOINER + body
    if body[-1].isspace():
        body += WORD_JOINER
    return body


def _inert_line(line: str, max_line: int) -> str:
    if not line:
        return WORD_JOINER
    line = _break_long_runs(line, max_line)
    line = _PUNCTUATION.sub(_escape, line)
    return _keep_spaces(line)


def _break_long_runs(line: str, max_line: int) -> str:
    if len(line) <= max_line:
        return line
    every = min(BREAK_EVERY, max_line)

    def split(match: re.Match[str]) -> str:
        run = match.group()
        return ZERO_WIDTH_SPACE.join(run[i : i + every] for i in range(0, len(run), every))

    return re.sub(rf"[^ \t]{{{max_line + 1},}}", split, line)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    line = match.string
    at = match.start()
    before = WORD_JOINER if char == "." and line[max(0, at - 3) : at].lower() == "www" else ""
    return before + "\\" + char + (WORD_JOINER if _starts_a_link(char, line, at + 1) else "")


# After these, a link or emoji finder could go on matching; see the module docstring.
_HOST_LABEL = re.compile(r"[^\W\d_]")  # a letter of any script: the start of a host name's next label
_EMAIL_DOMAIN = re.compile(r"[-\w]+\.[-\w]", re.ASCII)
_EMOJI_REST = re.compile(r"[\w+-]+:", re.ASCII)


def _starts_a_link(char: str, line: str, after: int) -> bool:
    """Whether ``char`` (just before ``line[after]``) needs a word joiner after it."""
    if char == ".":
        return bool(_HOST_LABEL.match(line, after))
    if char == "/":
        return line[after : after + 1] == "/"
    if char == "@":
        return bool(_EMAIL_DOMAIN.match(line, after))
    if char == ":":
        return bool(_EMOJI_REST.match(line, after))
    return False


def _keep_spaces(line: str) -> str:
    line = _LEADING_SPACES.sub(lambda m: NO_BREAK_SPACE * len(m.group()), line)
    line = _TRAILING_SPACES.sub(lambda m: NO_BREAK_SPACE * len(m.group()), line)
    # In a run of spaces all but the last become no-break spaces: the width shows and the
    # line can still wrap at the last one.
    line = _SPACE_RUN.sub(lambda m: NO_BREAK_SPACE * (len(m.group()) - 1) + " ", line)
    return line.replace("\t", _TAB_ENTITY)


def _control_picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return "\ufffd"


CITATION = re.compile(r"\[battle:([0-9a-f]{16})\]")


def cited_battles(text: str) -> list[str]:
    """The battle ids a report cites as ``[battle:ID]``, in order, once each."""
    return list(dict.fromkeys(CITATION.findall(text or "")))


def inert_with_citations(text: str, linkable: Collection[str], battle_url: str) -> str:
    """Untrusted text shown as itself, except ``[battle:ID]`` citations of ``linkable`` ids,
    which become links to ``battle_url?id=ID``. Any other citation stays plain text."""
    parts = []
    last = 0
    for match in CITATION.finditer(text or ""):
        parts.append(inert_markdown(text[last : match.start()]))
        battle_id = match.group(1)
        if battle_id in linkable:
            parts.append(f"[battle {battle_id[:8]}]({battle_url}?id={battle_id})")
        else:
            parts.append(inert_markdown(match.group()))
        last = match.end()
    parts.append(inert_markdown((text or "")[last:]))
    return "".join(parts)
