"""Makes ``twistd opush`` find opush; the real work lives in :mod:`opush.tap`."""

from twisted.application.service import ServiceMaker

opush = ServiceMaker(
    "opush",
    "opush.tap",
    "Exchange ActiveSync server (OBM / standalone IMAP, SMTP, CalDAV).",
    "opush",
)
