"""What the public project pages show, worked out from a release's stored core metadata.

- the description, rendered and sanitized by ``readme-renderer`` for its content type;
- the project URLs, linked only when they are http(s);
- the install commands, with the index URL from ``BASTION_BASE_URL`` (never the request).
"""

from __future__ import annotations

import email.message
import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.safestring import SafeString, mark_safe

__all__ = ["ProjectUrl", "install_commands", "project_urls", "render_description", "simple_url"]

_CACHE_SIZE: Final = 256
_cache: OrderedDict[str, str] = OrderedDict()
_cache_lock = threading.Lock()


def simple_url() -> str:
    """The index URL shown to users: BASTION_BASE_URL, never the request's Host header."""
    return f"{settings.BASTION.base_url}/simple/"


def install_commands(name: str, version: str | None = None) -> dict[str, str]:
    """The exact ``pip`` and ``uv`` commands installing ``name`` (at ``version``) from here."""
    index = simple_url()
    requirement = f"{name}=={version}" if version else name
    return {
        "pip": f"pip install --index-url {index} {requirement}",
        "uv": f"uv add --index {index} {requirement}",
    }


@dataclass(frozen=True)
class ProjectUrl:
    label: str
    url: str
    linkable: bool  # an http(s) URL with a host: shown as a link, else as text


def _is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def project_urls(metadata: dict[str, object]) -> list[ProjectUrl]:
    """``Home-page`` and each ``Project-URL`` of the metadata, in order.

    Stored as ``[label, url]`` pairs (``ReleaseMetadata.as_dict()``); "Label, URL" strings and
    a mapping are read too.
    """
    urls: list[ProjectUrl] = []
    home = str(metadata.get("home_page") or "").strip()
    if home:
        urls.append(ProjectUrl("Homepage", home, _is_web_url(home)))
    entries = metadata.get("project_urls") or []
    if isinstance(entries, dict):
        entries = list(entries.items())
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, (list, tuple)) and len(entry) == 2:
            label, url = str(entry[0]).strip(), str(entry[1]).strip()
        else:
            label, _, url = (part.strip() for part in str(entry).partition(","))
        if url:
            urls.append(ProjectUrl(label or url, url, _is_web_url(url)))
    return urls


def render_description(text: str, content_type: str) -> SafeString:
    """The description as sanitized HTML (PyPI's rules: reStructuredText by default, plain
    text when it fails to render). Renderings are memoized per process by content hash."""
    if not text.strip():
        return mark_safe("")
    key = hashlib.sha256(f"{content_type}\0{text}".encode()).hexdigest()
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return mark_safe(_cache[key])  # noqa: S308 - output of readme-renderer's sanitizer
    html = _render(text, content_type)
    with _cache_lock:
        _cache[key] = html
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return mark_safe(html)  # noqa: S308 - readme-renderer cleans its output (nh3)


_HEADING_TAG: Final = re.compile(r"<(/?)h([1-6])\b", re.IGNORECASE)


# The empty permalink readme-renderer puts in each Markdown heading: a link without a name.
_EMPTY_ANCHOR: Final = re.compile(r'<a href="#[^"<>]*"[^<>]*></a>')


# A fenced code block's language as GFM writes it (<pre lang="python">): "lang" is for human
# languages, so screen readers would read the code in "python" (axe: valid-lang).
_PRE_LANG: Final = re.compile(r'<pre lang="([^"<>]*)"')


def _fit_in_page(html: str) -> str:
    """h1 -> h3 ... h4+ -> h6 (the page keeps its one h1, the description sits under an h2),
    no empty heading permalinks (a link needs a name, WCAG 2.4.4), and a code block's language
    kept as data-lang, not lang.

    Runs on sanitized output, where a literal "<h1" in the text is already "&lt;h1".
    """
    html = _EMPTY_ANCHOR.sub("", html)
    html = _PRE_LANG.sub(r'<pre data-lang="\1"', html)
    return _HEADING_TAG.sub(lambda m: f"<{m[1]}h{min(6, int(m[2]) + 2)}", html)


def _render(text: str, declared: str) -> str:
    from readme_renderer import markdown, rst, txt

    message = email.message.EmailMessage()
    try:
        message["content-type"] = declared.strip() or "text/x-rst"
        content_type = message.get_content_type()
        parameters = dict(message["content-type"].params)
    except (ValueError, IndexError):
        content_type, parameters = "text/plain", {}
    rendered: str | None = None
    if content_type == "text/markdown":
        variant = parameters.get("variant", "GFM")
        rendered = markdown.render(text, variant=variant if variant == "CommonMark" else "GFM")
    elif content_type == "text/x-rst":
        rendered = rst.render(text)
    if rendered is not None:
        return f'<div class="description">{_fit_in_page(rendered)}</div>'
    plain = txt.render(text) or ""
    return f'<div class="description description--text">{plain}</div>' if plain else ""
