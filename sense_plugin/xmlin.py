"""Hardened parsing of request bodies: no DTDs, no entities, no network, bounded depth.

Element names are matched case-insensitively (docs/protocol.rst), so every tag is folded to lower
case (namespaces dropped) right after parsing.
"""

from __future__ import annotations

import re

from lxml import etree

from sense_plugin.errors import EmptyValueError, InvalidXmlError, MissingParameterError

_PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "huge_tree": False,  # keeps libxml2's depth and size limits on
    "remove_comments": True,
    "remove_pis": True,
}
_DTD_MARKER = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def parse_body(body: bytes, root: str) -> etree._Element:
    """Parse ``body`` as XML whose root element is ``root`` (case-insensitive).

    Raises :class:`InvalidXmlError` for anything that is not a plain, well-formed document.
    """
    if not body.strip():
        raise MissingParameterError(f"missing XML body: expected a <{root}> document")
    if _DTD_MARKER.search(body):
        raise InvalidXmlError("DTD and entity declarations are not allowed")
    parser = etree.XMLParser(**_PARSER_OPTIONS)
    try:
        element = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise InvalidXmlError(f"body is not well-formed XML (line {exc.lineno})") from None
    except ValueError:
        raise InvalidXmlError("body is not well-formed XML") from None
    if element.getroottree().docinfo.internalDTD is not None:
        raise InvalidXmlError("DTD and entity declarations are not allowed")
    _fold_tags(element)
    if element.tag != root.lower():
        raise InvalidXmlError(f"wrong root element <{element.tag}>, expected <{root}>")
    return element


def _fold_tags(root: etree._Element) -> None:
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        if isinstance(element, etree._Entity):
            raise InvalidXmlError("entity references are not allowed")
        element.tag = etree.QName(element).localname.lower()


def child_text(parent: etree._Element, name: str, *, required: bool = False,
               strip: bool = True) -> str | None:
    """The stripped text of ``parent``'s child ``name``, or None when absent.

    A present but empty element raises -23; a missing required one raises -10.
    ``strip=False`` keeps the text exactly as sent (passwords: spaces are characters too).
    """
    child = parent.find(name)
    if child is None:
        if required:
            raise MissingParameterError(f"missing element <{name}> in <{parent.tag}>")
        return None
    text = "".join(child.itertext())
    if strip:
        text = text.strip()
    if not text:
        raise EmptyValueError(f"element <{name}> in <{parent.tag}> is empty")
    return text
