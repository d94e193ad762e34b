"""Contact photos in GAL answers (EAS 14.1+): Search and Find GAL results, ResolveRecipients.

The request's ``Picture`` carries ``MaxSize`` (bytes) and ``MaxPictures`` (per query); each
entry then gets a ``Picture`` with Status 1 and the photo as ``Data``, or 173 NoPicture,
174 PictureTooLarge, 175 PictureLimitReached (MS-ASCMD 2.2.3.104.2-3, 2.2.3.105, 2.2.3.177).
Photos come from the directory's jpegPhoto, asked for only when a device wants them.
"""

from __future__ import annotations

import attrs
from lxml.etree import QName, _Element

from opush.wbxml import E

OK = 1
NO_PICTURE = 173
TOO_LARGE = 174
LIMIT_REACHED = 175


@attrs.define
class Pictures:
    """One query's photo budget."""

    max_size: int | None = None
    max_pictures: int | None = None
    given: int = 0

    @classmethod
    def from_request(cls, picture: _Element | None) -> Pictures | None:
        """From the request's ``Picture`` element (None: no photos wanted).  Bad numbers
        count as absent: a device is never refused for them."""
        if picture is None:
            return None
        limits: dict[str, int] = {}
        for child in picture:
            name = QName(child).localname if isinstance(child.tag, str) else ""
            text = (child.text or "").strip()
            if name in ("MaxSize", "MaxPictures") and text.isdigit():
                limits[name] = int(text)
        return cls(limits.get("MaxSize"), limits.get("MaxPictures"))

    def element(self, namespace: str, photo: bytes | None) -> _Element:
        """``<Picture><Status/>[<Data/>]</Picture>`` in the answer's namespace."""
        if not photo:
            status = NO_PICTURE
        elif self.max_size is not None and len(photo) > self.max_size:
            status = TOO_LARGE
        elif self.max_pictures is not None and self.given >= self.max_pictures:
            status = LIMIT_REACHED
        else:
            self.given += 1
            return E(
                namespace,
                "Picture",
                E(namespace, "Status", text=OK),
                E(namespace, "Data", text=photo),
            )
        return E(namespace, "Picture", E(namespace, "Status", text=status))
