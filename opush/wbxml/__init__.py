"""ActiveSync WBXML codec: bytes <-> lxml element trees with the code pages' namespaces.

``decode(data, limits=None)`` and ``encode(root, version=None)``; ``WbxmlError`` for every
failure; ``ns`` holds the namespace URIs ("AirSync:", "Email:", ...); ``E`` builds elements;
``opaque``/``set_opaque`` read and write OPAQUE bytes (see ``opush.wbxml.tree`` for how they are
carried on an element). Code page data: ``opush.wbxml.codepages``; log renderings:
``opush.wbxml.logging``.
"""

from opush.wbxml import codepages, ns
from opush.wbxml.codec import DEFAULT_LIMITS, Limits, WbxmlError, decode, encode
from opush.wbxml.tree import OPAQUE_ATTR, E, is_opaque, opaque, set_opaque

__all__ = [
    "DEFAULT_LIMITS",
    "OPAQUE_ATTR",
    "E",
    "Limits",
    "WbxmlError",
    "codepages",
    "decode",
    "encode",
    "is_opaque",
    "ns",
    "opaque",
    "set_opaque",
]
