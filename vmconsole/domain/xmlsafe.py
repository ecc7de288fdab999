"""XML parsing that never resolves entities, never loads a DTD and never touches the network."""

from __future__ import annotations

from lxml import etree

from vmconsole.domain.errors import ValidationError


def _parser(*, remove_blank_text: bool) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=remove_blank_text,
    )


_PARSER = _parser(remove_blank_text=False)
# dropping the whitespace between elements: a tool's indentation, which differs with the depth a
# section was printed at, is then not part of the elements it separates
_COMPACT_PARSER = _parser(remove_blank_text=True)


def parse(text: str | bytes, *, what: str = "XML", field: str | None = None, compact: bool = False) -> etree._Element:
    """Parse untrusted XML. A DOCTYPE (the carrier of entities and external references) is refused.
    ``compact``: whitespace-only text between elements is dropped."""
    try:
        data = text.encode() if isinstance(text, str) else text
    except UnicodeEncodeError as exc:  # a lone surrogate: bytes that were not UTF-8, decoded leniently
        raise ValidationError(
            f"{what} is not text: U+{ord(exc.object[exc.start]):04X} at position {exc.start + 1}", field=field
        ) from exc
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ValidationError(f"{what} declares a DOCTYPE or entities, which vmconsole never resolves", field=field)
    try:
        root = etree.fromstring(data, _COMPACT_PARSER if compact else _PARSER)
    except etree.XMLSyntaxError as exc:
        raise ValidationError(f"{what} is not well-formed: {exc}", field=field) from exc
    if root is None:
        raise ValidationError(f"{what} is empty", field=field)
    # The byte check above misses UTF-16/32 input: look at what the parser actually saw.
    if (
        root.getroottree().docinfo.internalDTD is not None
        or next(root.iter(etree.Entity), None) is not None  # lxml's own walk, entity references only
    ):
        raise ValidationError(f"{what} declares a DOCTYPE or entities, which vmconsole never resolves", field=field)
    return root


def tostring(root: etree._Element) -> str:
    return etree.tostring(root, encoding="unicode")
