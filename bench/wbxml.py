"""WBXML codec benchmark: opush.wbxml against libwbxml2 (C, via ctypes) and pyactivesync, same run.

Workloads:
  (a) a Sync response carrying 100 emails (about 1 MB: HTML bodies, headers, flags);
  (b) a FolderSync request (a few bytes: per-request overhead).

For each codec, decode (bytes -> tree) and encode (tree -> bytes) are timed:
  opush       decode(data) -> lxml tree; encode(tree) -> bytes
  libwbxml2   the C path a Python server could take: wbxml2xml in C, then lxml parses the XML;
              lxml serialises the tree, then xml2wbxml in C (ActiveSync, WBXML 1.3, no string
              table, anonymous public id: Exchange's form)
  pyactivesync  its pure-Python WBXMLReader.parse() / WBXMLWriter (from prebuilt closures)

Prints MB/s and requests/s per codec and the ratio of opush to libwbxml2 (goal for (a): opush no
slower than 3x libwbxml2's C path). Run: .venv/bin/python bench/wbxml.py [--quick]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from lxml import etree

from opush.wbxml import E, decode, encode, ns

DOCTYPE = (
    b'<!DOCTYPE ActiveSync PUBLIC "-//MICROSOFT//DTD ActiveSync//EN" "http://www.microsoft.com/">'
)
WBXML_LANG_ACTIVESYNC = 2402
WBXML_GEN_XML_COMPACT = 0
WBXML_VERSION_13 = 0x03

_WORDS = (
    "réunion projet budget livraison client équipe planning semaine demain rapport "
    "meeting quarterly review deadline invoice attached please find below regards"
).split()


def sync_response(emails: int = 100, seed: int = 1) -> etree._Element:
    """A Sync response adding ``emails`` HTML mails (12.1 shape, the corpus's), ~10 KB each."""
    rnd = random.Random(seed)
    A, M, B = ns.AIRSYNC, ns.EMAIL, ns.AIRSYNCBASE
    adds = []
    for i in range(emails):
        paragraphs = "".join(
            "<p>" + " ".join(rnd.choice(_WORDS) for _ in range(60)) + "</p>\r\n" for _ in range(22)
        )
        html = f"<html><head><meta charset='utf-8'></head><body>\r\n{paragraphs}</body></html>"
        adds.append(
            E(
                A,
                "Add",
                E(A, "ServerId", text=f"5:{1000 + i}"),
                E(
                    A,
                    "ApplicationData",
                    E(M, "To", text='"Alice Martin" <alice@example.org>'),
                    E(M, "From", text='"Bob Durand" <bob@example.org>'),
                    E(M, "Subject", text=f"Réunion n°{i}: {' '.join(rnd.sample(_WORDS, 5))}"),
                    E(M, "DateReceived", text="2014-09-24T13:08:21.000Z"),
                    E(M, "DisplayTo", text="Alice Martin"),
                    E(M, "Importance", text="1"),
                    E(M, "Read", text=str(i % 2)),
                    E(
                        B,
                        "Body",
                        E(B, "Type", text="2"),
                        E(B, "EstimatedDataSize", text=str(len(html.encode()))),
                        E(B, "Data", text=html),
                    ),
                    E(M, "MessageClass", text="IPM.Note"),
                    E(M, "InternetCPID", text="65001"),
                    E(M, "Flag"),
                    E(M, "ContentClass", text="urn:content-classes:message"),
                    E(B, "NativeBodyType", text="2"),
                ),
            )
        )
    return E(
        A,
        "Sync",
        E(
            A,
            "Collections",
            E(
                A,
                "Collection",
                E(A, "Class", text="Email"),
                E(A, "SyncKey", text="1471285432"),
                E(A, "CollectionId", text="5"),
                E(A, "Status", text="1"),
                E(A, "Commands", *adds),
                E(A, "MoreAvailable"),
            ),
        ),
    )


def foldersync_request() -> etree._Element:
    return E(
        ns.FOLDERHIERARCHY,
        "FolderSync",
        E(ns.FOLDERHIERARCHY, "SyncKey", text="7c8d6e1b-3d42-4b5e-9c39-5b1f8f0b2a61"),
    )


class LibWbxml:
    """libwbxml2 through ctypes (libwbxml2-dev's libwbxml2.so)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("wbxml2") or "libwbxml2.so.1"
        lib = ctypes.CDLL(name)
        vp, ul = ctypes.c_void_p, ctypes.c_ulong
        for fn, args in {
            "wbxml_conv_wbxml2xml_create": [ctypes.POINTER(vp)],
            "wbxml_conv_wbxml2xml_set_language": [vp, ctypes.c_int],
            "wbxml_conv_wbxml2xml_set_gen_type": [vp, ctypes.c_int],
            "wbxml_conv_wbxml2xml_enable_preserve_whitespaces": [vp],
            "wbxml_conv_wbxml2xml_run": [
                vp,
                ctypes.c_char_p,
                ul,
                ctypes.POINTER(vp),
                ctypes.POINTER(ul),
            ],
            "wbxml_conv_wbxml2xml_destroy": [vp],
            "wbxml_conv_xml2wbxml_create": [ctypes.POINTER(vp)],
            "wbxml_conv_xml2wbxml_set_version": [vp, ctypes.c_int],
            "wbxml_conv_xml2wbxml_enable_preserve_whitespaces": [vp],
            "wbxml_conv_xml2wbxml_disable_string_table": [vp],
            "wbxml_conv_xml2wbxml_disable_public_id": [vp],
            "wbxml_conv_xml2wbxml_run": [
                vp,
                ctypes.c_char_p,
                ul,
                ctypes.POINTER(vp),
                ctypes.POINTER(ul),
            ],
            "wbxml_conv_xml2wbxml_destroy": [vp],
            "wbxml_free": [vp],
        }.items():
            getattr(lib, fn).argtypes = args
        self.lib = lib

    def to_xml(self, data: bytes) -> bytes:
        lib, conv = self.lib, ctypes.c_void_p()
        if lib.wbxml_conv_wbxml2xml_create(ctypes.byref(conv)) != 0:
            raise RuntimeError("wbxml_conv_wbxml2xml_create failed")
        try:
            lib.wbxml_conv_wbxml2xml_set_language(conv, WBXML_LANG_ACTIVESYNC)
            lib.wbxml_conv_wbxml2xml_set_gen_type(conv, WBXML_GEN_XML_COMPACT)
            lib.wbxml_conv_wbxml2xml_enable_preserve_whitespaces(conv)
            out, out_len = ctypes.c_void_p(), ctypes.c_ulong()
            rc = lib.wbxml_conv_wbxml2xml_run(
                conv, data, len(data), ctypes.byref(out), ctypes.byref(out_len)
            )
            if rc != 0:
                raise RuntimeError(f"wbxml2xml failed: {rc}")
            try:
                return ctypes.string_at(out, out_len.value)
            finally:
                lib.wbxml_free(out)
        finally:
            lib.wbxml_conv_wbxml2xml_destroy(conv)

    def to_wbxml(self, xml: bytes) -> bytes:
        lib, conv = self.lib, ctypes.c_void_p()
        if lib.wbxml_conv_xml2wbxml_create(ctypes.byref(conv)) != 0:
            raise RuntimeError("wbxml_conv_xml2wbxml_create failed")
        try:
            lib.wbxml_conv_xml2wbxml_set_version(conv, WBXML_VERSION_13)
            lib.wbxml_conv_xml2wbxml_enable_preserve_whitespaces(conv)
            lib.wbxml_conv_xml2wbxml_disable_string_table(conv)
            lib.wbxml_conv_xml2wbxml_disable_public_id(conv)
            out, out_len = ctypes.c_void_p(), ctypes.c_ulong()
            rc = lib.wbxml_conv_xml2wbxml_run(
                conv, xml, len(xml), ctypes.byref(out), ctypes.byref(out_len)
            )
            if rc != 0:
                raise RuntimeError(f"xml2wbxml failed: {rc}")
            try:
                return ctypes.string_at(out, out_len.value)
            finally:
                lib.wbxml_free(out)
        finally:
            lib.wbxml_conv_xml2wbxml_destroy(conv)

    def decode(self, data: bytes) -> etree._Element:
        parser = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)
        return etree.fromstring(self.to_xml(data), parser)

    def encode(self, root: etree._Element) -> bytes:
        xml = etree.tostring(root, encoding="UTF-8", xml_declaration=False)
        return self.to_wbxml(b'<?xml version="1.0" encoding="UTF-8"?>' + DOCTYPE + xml)


def pyactivesync_builder(el: etree._Element) -> Any:
    """pyactivesync's encoder input (nested ``wtag`` closures) for our tree, built untimed."""
    from pyactivesync._wbxml import wtag

    uri, _, local = el.tag[1:].partition("}")
    children = [pyactivesync_builder(c) for c in el]
    return wtag(uri.rstrip(":"), local, children or None, text=el.text)


def _shape(el: etree._Element) -> tuple[object, ...]:
    """Tag, text and children; CRLF as LF (libwbxml2 writes CR raw, which XML parsing drops)."""
    text = el.text.replace("\r\n", "\n") if el.text is not None else None
    return (el.tag, text, tuple(_shape(c) for c in el))


def timeit(fn: Callable[[], object], min_time: float) -> float:
    """Seconds per call: best of 3 runs of at least ``min_time`` each."""
    fn()
    best = float("inf")
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        best = min(best, elapsed / n)
    return best


def _runs(
    tree: etree._Element, data: bytes, libwbxml: LibWbxml | None
) -> list[tuple[str, str, Callable[[], object]]]:
    """(codec, operation, callable) for every codec available; checks that they agree first."""
    runs: list[tuple[str, str, Callable[[], object]]] = [
        ("opush", "decode", lambda: decode(data)),
        ("opush", "encode", lambda: encode(tree)),
    ]
    if libwbxml is not None:
        assert libwbxml.encode(tree) == data, "libwbxml2 encodes differently"
        assert _shape(libwbxml.decode(data)) == _shape(decode(data)), "trees differ"
        lw = libwbxml
        runs += [
            ("libwbxml2 C", "decode", lambda: lw.decode(data)),
            ("libwbxml2 C", "encode", lambda: lw.encode(tree)),
        ]
    try:
        from pyactivesync._wbxml import WBXMLReader, WBXMLWriter
    except ImportError:
        return runs
    builder = pyactivesync_builder(tree)

    def pya_encode() -> bytes:
        w = WBXMLWriter()
        builder(w)
        return w.render()

    assert pya_encode() == data, "pyactivesync encodes differently"
    runs += [
        ("pyactivesync", "decode", lambda: WBXMLReader(data).parse()),
        ("pyactivesync", "encode", pya_encode),
    ]
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (less precise)")
    args = parser.parse_args(argv)
    min_time = 0.2 if args.quick else 1.0

    try:
        libwbxml: LibWbxml | None = LibWbxml()
    except OSError as e:
        print(f"libwbxml2 not available ({e}); install libwbxml2-dev", file=sys.stderr)
        libwbxml = None
    print(f"python {sys.version.split()[0]}, lxml {etree.__version__}")
    print(f"{'workload':<22} {'codec':<13} {'op':<7} {'MB/s':>9} {'req/s':>10} {'vs C':>7}")
    workloads = (
        ("(a) Sync, 100 emails", sync_response()),
        ("(b) FolderSync req", foldersync_request()),
    )
    for label, tree in workloads:
        data = encode(tree)
        print(f"{label} = {len(data):,} bytes")
        runs = _runs(tree, data, libwbxml)
        results = {(codec, op): timeit(fn, min_time) for codec, op, fn in runs}
        size_mb = len(data) / 1e6
        for codec, op, _ in runs:
            t = results[(codec, op)]
            c = results.get(("libwbxml2 C", op))
            ratio = f"{t / c:6.2f}x" if c else "     -"
            print(f"{'':<22} {codec:<13} {op:<7} {size_mb / t:9.1f} {1 / t:10.0f} {ratio}")
    print("vs C = time relative to libwbxml2's C path (lower is faster; goal for (a): <= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
