"""Text encodings of attribute data: ``.cpg``, the DBF language driver byte, strict probing.

Shapefile attributes (``.dbf``) carry no reliable encoding. The reader decides, in this order:

1. ``encoding=`` from the user (source ``override``);
2. the ``.cpg`` sidecar (source ``cpg``), e.g. ``UTF-8``, ``GBK``, ``936``, ``ANSI 936``;
3. the language-driver ID (LDID), byte 29 of the ``.dbf`` header (source ``dbf_ldid``):
   0x4D and 0x7A are code page 936 (GBK, simplified Chinese), 0x4F and 0x78 are 950 (Big5),
   0x13/0x7B are 932 (Shift-JIS), 0x4E/0x79 are 949 (Korean), 0x57 is "current ANSI code
   page" and 0x00 is unset: those two say nothing;
4. strict UTF-8 over every string value and field name (source ``utf-8``);
5. strict GB18030, a superset of GBK and GB2312 (source ``gb18030-fallback``).

A declared encoding (``.cpg`` or LDID) that fails to decode the values strictly is reported and
the probing continues; a value that decodes under none of them raises
:class:`~yizhangtu.errors.EncodingError` naming the feature and the field.

CSV files are probed the same way (UTF-8 with or without BOM, then GB18030: Excel on Chinese
Windows writes GBK). GeoJSON is UTF-8 by definition (RFC 7946 §11); a non-UTF-8 GeoJSON raises
``EncodingError`` (key ``geojson_not_utf8``) unless the user passes ``encoding=``, in which case
the file is transcoded before GDAL reads it.
"""

from __future__ import annotations

import codecs
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal

import numpy as np

from yizhangtu.errors import EncodingError, FileFormatError

__all__ = [
    "LDID_CODEPAGES",
    "DbfField",
    "DbfHeader",
    "EncodingChoice",
    "EncodingSource",
    "choose_dbf_encoding",
    "choose_text_encoding",
    "codec_label",
    "normalize_codec",
    "parse_cpg",
    "read_dbf_header",
]

EncodingSource = Literal["cpg", "dbf_ldid", "utf-8", "gb18030-fallback", "override", "n/a"]

#: DBF language driver ID → Python codec (dBase / ArcGIS / GDAL tables).
LDID_CODEPAGES: dict[int, str] = {
    0x01: "cp437",
    0x02: "cp850",
    0x03: "cp1252",
    0x04: "mac_roman",
    0x08: "cp865",
    0x09: "cp437",
    0x0A: "cp850",
    0x0B: "cp437",
    0x0D: "cp437",
    0x0E: "cp850",
    0x0F: "cp437",
    0x10: "cp850",
    0x11: "cp437",
    0x12: "cp850",
    0x13: "cp932",
    0x14: "cp850",
    0x15: "cp437",
    0x16: "cp850",
    0x17: "cp865",
    0x18: "cp437",
    0x19: "cp437",
    0x1A: "cp850",
    0x1B: "cp437",
    0x1C: "cp863",
    0x1D: "cp850",
    0x1F: "cp852",
    0x22: "cp852",
    0x23: "cp852",
    0x24: "cp860",
    0x25: "cp850",
    0x26: "cp866",
    0x37: "cp850",
    0x40: "cp852",
    0x4D: "gbk",  # 936 Chinese GBK (PRC)
    0x4E: "cp949",  # Korean
    0x4F: "big5",  # 950 Chinese Big5 (Taiwan, Hong Kong)
    0x50: "cp874",  # Thai
    0x58: "cp1252",
    0x59: "cp1252",
    0x64: "cp852",
    0x65: "cp866",
    0x66: "cp865",
    0x67: "cp861",
    0x6A: "cp737",
    0x6B: "cp857",
    0x6C: "cp863",
    0x78: "big5",  # 950 Taiwan Big5
    0x79: "cp949",  # Hangul (Wansung)
    0x7A: "gbk",  # 936 PRC GBK
    0x7B: "cp932",  # Japanese Shift-JIS
    0x7C: "cp874",
    0x7D: "cp1255",
    0x7E: "cp1256",
    0x86: "cp737",
    0x87: "cp852",
    0x88: "cp857",
    0xC8: "cp1250",
    0xC9: "cp1251",
    0xCA: "cp1254",
    0xCB: "cp1253",
    0xCC: "cp1257",
}
#: LDIDs that declare nothing: unset, and "the writer's current ANSI code page".
_LDID_UNSPECIFIED = {0x00, 0x57}

_LABELS = {
    "utf-8": "UTF-8",
    "gb18030": "GB18030",
    "gbk": "GBK",
    "gb2312": "GB2312",
    "big5": "BIG5",
    "cp950": "CP950",
    "big5hkscs": "BIG5-HKSCS",
    "latin-1": "ISO-8859-1",
    "iso8859-1": "ISO-8859-1",
    "shift_jis": "SHIFT_JIS",
    "utf-16": "UTF-16",
}


def normalize_codec(name: str) -> str | None:
    """Python codec name for an encoding label, or None if unknown."""
    try:
        return codecs.lookup(name.strip()).name
    except (LookupError, AttributeError):
        return None


def codec_label(codec: str) -> str:
    """Label shown to users and passed to GDAL (``UTF-8``, ``GB18030``, ``GBK``, ``CP1252``)."""
    name = normalize_codec(codec) or codec
    if name in _LABELS:
        return _LABELS[name]
    if name.startswith("cp") and name[2:].isdigit():
        return name.upper()
    if name.startswith("iso8859-"):
        return "ISO-8859-" + name.split("-", 1)[1]
    return name.upper()


def parse_cpg(text: str) -> str | None:
    """Python codec named by a ``.cpg`` file (``UTF-8``, ``GBK``, ``936``, ``ANSI 936``, ``88591``).

    Returns None when the content names no known encoding.
    """
    value = text.strip().strip("\ufeff").strip()
    if not value:
        return None
    upper = value.upper()
    m = re.fullmatch(r"(?:ANSI|OEM|CP|WINDOWS-|LDID/)?\s*(\d+)", upper)
    if m:
        num = int(m.group(1))
        if upper.startswith("LDID/"):
            return LDID_CODEPAGES.get(num)
        if num == 65001:
            return "utf-8"
        if num == 936:
            return "gbk"
        if num == 950:
            return "big5"
        if num == 54936:
            return "gb18030"
        if 88591 <= num <= 885916:
            return normalize_codec(f"iso8859-{num - 88590}")
        return normalize_codec(f"cp{num}")
    return normalize_codec(value)


# --------------------------------------------------------------------------- DBF


@dataclass(frozen=True)
class DbfField:
    """One field descriptor of a ``.dbf`` header."""

    name_bytes: bytes
    type: str
    offset: int
    length: int


@dataclass(frozen=True)
class DbfHeader:
    """The parts of a ``.dbf`` header the reader needs."""

    n_records: int
    header_length: int
    record_length: int
    ldid: int
    fields: tuple[DbfField, ...]

    def field_name(self, i: int, codec: str = "latin-1") -> str:
        """Field name decoded with ``codec`` (replacement characters on failure)."""
        return self.fields[i].name_bytes.decode(codec, errors="replace")


def read_dbf_header(stream: BinaryIO, *, file: str | None = None) -> DbfHeader:
    """Parse the fixed header and field descriptors of a dBase III/IV table.

    Raises
    ------
    FileFormatError
        key ``file_corrupt`` when the header is incomplete or inconsistent.
    """
    head = stream.read(32)
    if len(head) < 32:
        raise FileFormatError(
            ".dbf 属性表文件头不完整",
            key="file_corrupt",
            file=file,
            hint="属性表文件已损坏，请重新导出 Shapefile",
        )
    n_records, header_length, record_length = struct.unpack("<IHH", head[4:12])
    ldid = head[29]
    rest = stream.read(max(header_length - 32, 0))
    fields: list[DbfField] = []
    offset = 1  # deletion flag
    for i in range(0, len(rest) - 31, 32):
        desc = rest[i : i + 32]
        if desc[0] == 0x0D:
            break
        name = desc[:11].split(b"\x00", 1)[0]
        ftype = chr(desc[11])
        length = desc[16]
        if ftype == "C":
            length = (
                desc[16] + 256 * desc[17]
            )  # some writers use the decimals byte as length high byte
        fields.append(DbfField(name, ftype, offset, length))
        offset += length
    if header_length < 33 or (fields and offset > record_length):
        raise FileFormatError(
            ".dbf 属性表文件头损坏（字段定义与记录长度不一致）",
            key="file_corrupt",
            file=file,
            hint="属性表文件已损坏，请重新导出 Shapefile",
        )
    return DbfHeader(n_records, header_length, record_length, ldid, tuple(fields))


@dataclass
class _Probe:
    """First failure of one codec over a scan."""

    codec: str
    first_bad: tuple[int | None, int, bytes] | None = None  # (row or None for header, field, value)

    def test(self, value: bytes, row: int | None, field: int) -> None:
        if self.first_bad is not None and _order(self.first_bad) <= (
            row if row is not None else -1,
            field,
        ):
            return
        try:
            value.decode(self.codec)
        except UnicodeDecodeError:
            self.first_bad = (row, field, value)


def _order(bad: tuple[int | None, int, bytes]) -> tuple[int, int]:
    return (bad[0] if bad[0] is not None else -1, bad[1])


_CJK = re.compile(r"[\u4e00-\u9fff]")


def _iter_dbf_text(
    stream: BinaryIO, header: DbfHeader, chunk_rows: int = 100_000
) -> Iterator[tuple[int | None, int, bytes]]:
    """Yield (row, field, raw value) for each distinct non-ASCII text value of each chunk.

    Rows come in order of first appearance; (None, i, name) is yielded first for non-ASCII
    field names.
    """
    for i, f in enumerate(header.fields):
        if any(b >= 0x80 for b in f.name_bytes):
            yield None, i, f.name_bytes
    text_fields = [(i, f) for i, f in enumerate(header.fields) if f.type in ("C", "V")]
    if not text_fields or header.record_length == 0:
        return
    row0 = 0
    while row0 < header.n_records:
        n = min(chunk_rows, header.n_records - row0)
        buf = stream.read(n * header.record_length)
        got = len(buf) // header.record_length
        if got == 0:
            return
        arr = np.frombuffer(buf[: got * header.record_length], dtype=np.uint8).reshape(
            got, header.record_length
        )
        live = arr[:, 0] != 0x2A  # '*' marks a deleted record
        for i, f in text_fields:
            col = arr[:, f.offset : f.offset + f.length]
            high = live & (col >= 0x80).any(axis=1)
            if not high.any():
                continue
            rows = np.flatnonzero(high)
            values = np.ascontiguousarray(col[rows]).view(f"S{f.length}").ravel()
            uniq, first = np.unique(values, return_index=True)
            order = np.argsort(first, kind="stable")
            for value, pos in zip(uniq[order], first[order], strict=True):
                yield row0 + int(rows[pos]), i, bytes(value).rstrip(b" ")
        row0 += got
        if got < n:
            return


@dataclass(frozen=True)
class EncodingChoice:
    """How the attribute text of a source is decoded.

    Attributes
    ----------
    encoding : str or None
        Label (``UTF-8``, ``GB18030``, ``GBK`` ...), passed to GDAL.
    codec : str or None
        Python codec name.
    source : str
        ``cpg``, ``dbf_ldid``, ``utf-8``, ``gb18030-fallback``, ``override`` or ``n/a``.
    warnings : tuple of str
        Chinese notes for the report.
    """

    encoding: str | None
    codec: str | None
    source: EncodingSource
    warnings: tuple[str, ...] = ()


def _override_codec(encoding: str, file: str | None) -> str:
    codec = normalize_codec(encoding)
    if codec is None:
        raise EncodingError(
            f"未知的字符编码: {encoding}",
            key="encoding_unknown",
            file=file,
            hint="常用编码：UTF-8、GBK、GB18030、BIG5",
        )
    return codec


def _row_label(row: int | None) -> str:
    return "字段名" if row is None else f"第 {row + 1} 个要素（序号 {row}）"


def _bad_value_text(value: bytes) -> str:
    return value[:40].decode("gb18030", errors="replace")


def choose_dbf_encoding(
    open_dbf: Callable[[], BinaryIO],
    *,
    cpg_text: str | None,
    override: str | None = None,
    file: str | None = None,
) -> EncodingChoice:
    """Decide the encoding of a ``.dbf`` by scanning every text value (bounded memory).

    Parameters
    ----------
    open_dbf : callable
        Returns a fresh binary stream positioned at the start of the ``.dbf``.
    cpg_text : str or None
        Content of the ``.cpg`` sidecar, None when there is none.
    override : str, optional
        Encoding given by the user.
    file : str, optional
        File name for messages.

    Returns
    -------
    EncodingChoice

    Raises
    ------
    EncodingError
        ``encoding_undecodable`` (no candidate decodes every value) or ``encoding_unknown``.
    """
    notes: list[str] = []
    declared: tuple[str, EncodingSource, str] | None = None  # (codec, source, description)
    over_codec = _override_codec(override, file) if override else None
    if cpg_text is not None:
        cpg_codec = parse_cpg(cpg_text)
        if cpg_codec is None:
            notes.append(f".cpg 内容“{cpg_text.strip()[:30]}”不是可识别的编码，改为自动判断")
        else:
            declared = (cpg_codec, "cpg", f".cpg 声明的 {codec_label(cpg_codec)}")
    with open_dbf() as stream:
        header = read_dbf_header(stream, file=file)
        if declared is None and header.ldid not in _LDID_UNSPECIFIED:
            ld_codec = LDID_CODEPAGES.get(header.ldid)
            if ld_codec is None:
                notes.append(f"DBF 语言驱动标记 0x{header.ldid:02X} 未知，改为自动判断")
            else:
                declared = (
                    ld_codec,
                    "dbf_ldid",
                    f"DBF 语言驱动标记（LDID 0x{header.ldid:02X}）声明的 {codec_label(ld_codec)}",
                )
        probes = {c: _Probe(c) for c in {"utf-8", "gb18030"}}
        if declared is not None:
            probes.setdefault(declared[0], _Probe(declared[0]))
        if over_codec is not None:
            probes.setdefault(over_codec, _Probe(over_codec))
        any_text = False
        cjk_utf8: tuple[int | None, int] | None = None
        for row, field, value in _iter_dbf_text(stream, header):
            any_text = True
            for p in probes.values():
                p.test(value, row, field)
            if cjk_utf8 is None:
                try:
                    if _CJK.search(value.decode("utf-8")):
                        cjk_utf8 = (row, field)
                except UnicodeDecodeError:
                    pass

    def where(bad: tuple[int | None, int, bytes]) -> tuple[int | None, str]:
        return bad[0], header.field_name(bad[1], "gb18030")

    if over_codec is not None:
        bad = probes[over_codec].first_bad
        if bad is not None:
            row, fname = where(bad)
            raise EncodingError(
                f"{_row_label(row)}的属性文本无法按指定的 {codec_label(over_codec)} 解码"
                f"（“{_bad_value_text(bad[2])}”）",
                key="encoding_undecodable",
                file=file,
                feature=row,
                field=fname,
                hint=(
                    "请换一种编码重试（如 GBK、GB18030、UTF-8、BIG5），或不指定 --encoding 自动判断"
                ),
            )
        return EncodingChoice(codec_label(over_codec), over_codec, "override", tuple(notes))

    if declared is not None:
        codec, source, desc = declared
        bad = probes[codec].first_bad
        if bad is None:
            if source == "dbf_ldid":
                notes.append(f"未找到 .cpg，按 {desc} 解码")
            return EncodingChoice(codec_label(codec), codec, source, tuple(notes))
        row, fname = where(bad)
        notes.append(f"{desc} 无法解码{_row_label(row)}的字段 {fname}，改为自动判断")

    prefix = "未找到 .cpg" if cpg_text is None else ".cpg 无效"
    if probes["utf-8"].first_bad is None:
        if any_text:
            notes.append(f"{prefix}，文本均为合法 UTF-8，按 UTF-8 解码")
        return EncodingChoice("UTF-8", "utf-8", "utf-8", tuple(notes))
    if probes["gb18030"].first_bad is None:
        notes.append(f"{prefix}，按 GB18030 解码")
        if cjk_utf8 is not None:
            notes.append(
                f"{_row_label(cjk_utf8[0])}的字段 {header.field_name(cjk_utf8[1], 'gb18030')} "
                "同时是合法的 UTF-8 中文，文件可能混用了编码，请检查"
            )
        return EncodingChoice("GB18030", "gb18030", "gb18030-fallback", tuple(notes))
    bad = probes["gb18030"].first_bad
    assert bad is not None
    row, fname = where(bad)
    raise EncodingError(
        f"{_row_label(row)}的属性文本既不是 UTF-8 也不是 GB18030/GBK"
        f"（“{_bad_value_text(bad[2])}”）",
        key="encoding_undecodable",
        file=file,
        feature=row,
        field=fname,
        hint="请用 --encoding 指定编码（如 BIG5），或在源软件中另存为 UTF-8",
    )


# --------------------------------------------------------------------------- text files


@dataclass(frozen=True)
class _TextFailure:
    offset: int  # byte offset of the first undecodable byte
    line: int  # 1-based line number
    before: bytes  # up to 4 KiB before the failure
    after: bytes  # up to 64 bytes from the failure on


def _scan_text(open_bytes: Callable[[], BinaryIO], codec: str, skip: int) -> _TextFailure | None:
    """Strictly decode a whole file incrementally; return where it first fails."""
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    pos = 0
    lines = 1
    tail = b""
    with open_bytes() as fh:
        if skip:
            fh.read(skip)
            pos = skip
        while True:
            block = fh.read(1 << 20)
            final = not block
            try:
                decoder.decode(block, final=final)
            except UnicodeDecodeError as exc:
                # exc.start is relative to the decoder's buffered input, which may begin with a
                # few bytes carried over from the previous block.
                carried = len(exc.object) - len(block)
                rel = exc.start - carried
                data = tail + block
                cut = len(tail) + rel
                lines += data.count(b"\n", len(tail), max(cut, len(tail)))
                return _TextFailure(
                    pos + rel, lines, data[max(cut - 4096, 0) : cut], data[cut : cut + 64]
                )
            if final:
                return None
            lines += block.count(b"\n")
            tail = (tail + block)[-4096:]
            pos += len(block)


def _bom(open_bytes: Callable[[], BinaryIO]) -> tuple[str | None, int]:
    with open_bytes() as fh:
        head = fh.read(4)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", 0
    return None, 0


_GEOJSON_FEATURE = re.compile(rb'"type"\s*:\s*"Feature"')
_GEOJSON_KEY = re.compile(r'"([^"\\]{1,80})"\s*:\s*"[^"]*$')


def choose_text_encoding(
    open_bytes: Callable[[], BinaryIO],
    *,
    kind: Literal["csv", "geojson"],
    override: str | None = None,
    file: str | None = None,
    separator: bytes = b",",
) -> EncodingChoice:
    """Decide the encoding of a CSV or GeoJSON file by strict incremental decoding.

    Raises
    ------
    EncodingError
        ``geojson_not_utf8`` for GeoJSON that is not UTF-8 (without ``override``),
        ``encoding_undecodable`` when nothing (or the override) decodes the file.
    """
    notes: list[str] = []
    bom_codec, skip = _bom(open_bytes)
    if override:
        codec = _override_codec(override, file)
        fail = _scan_text(open_bytes, codec, skip if codec == "utf-8" else 0)
        if fail is not None:
            raise _text_error(fail, kind, file, separator, codec_label(codec))
        return EncodingChoice(codec_label(codec), codec, "override", ())
    if bom_codec == "utf-16":
        if kind == "geojson":
            raise EncodingError(
                "GeoJSON 文件是 UTF-16 编码，GeoJSON 规定必须为 UTF-8（RFC 7946）",
                key="geojson_not_utf8",
                file=file,
                hint="请另存为 UTF-8，或用 --encoding UTF-16 导入",
            )
        fail = _scan_text(open_bytes, "utf-16", 0)
        if fail is None:
            return EncodingChoice(
                "UTF-16", "utf-16", "utf-8", ("文件带 UTF-16 字节序标记，按 UTF-16 解码",)
            )
    fail = _scan_text(open_bytes, "utf-8", skip)
    if fail is None:
        return EncodingChoice("UTF-8", "utf-8-sig" if skip else "utf-8", "utf-8", tuple(notes))
    if kind == "geojson":
        sample = (fail.before[-30:] + fail.after).decode("gb18030", errors="replace")
        key_match = _GEOJSON_KEY.search(fail.before.decode("gb18030", errors="replace"))
        raise EncodingError(
            "GeoJSON 文件不是 UTF-8 编码（GeoJSON 规定必须为 UTF-8，RFC 7946）；"
            f"第 {fail.line} 行附近按 GB18030 读出为“{sample.strip()[:60]}”",
            key="geojson_not_utf8",
            file=file,
            feature=_count_geojson_features(open_bytes, fail.offset),
            field=key_match.group(1) if key_match else None,
            hint="请另存为 UTF-8；或确认编码后用 --encoding GB18030 导入",
            data={"byte_offset": fail.offset, "line": fail.line},
        )
    gb_fail = _scan_text(open_bytes, "gb18030", 0)
    if gb_fail is None:
        notes.append("文件不是 UTF-8，按 GB18030 解码（Excel 在中文 Windows 上默认保存为 GBK）")
        return EncodingChoice("GB18030", "gb18030", "gb18030-fallback", tuple(notes))
    raise _text_error(gb_fail, kind, file, separator, "UTF-8 或 GB18030")


def _count_geojson_features(open_bytes: Callable[[], BinaryIO], upto: int) -> int | None:
    """Index of the GeoJSON feature that contains byte ``upto`` (features counted before it)."""
    count = 0
    carry = b""
    pos = 0
    with open_bytes() as fh:
        while pos < upto:
            block = fh.read(min(1 << 20, upto - pos))
            if not block:
                break
            data = carry + block
            count += sum(1 for m in _GEOJSON_FEATURE.finditer(data) if m.end() > len(carry))
            carry = data[-64:]
            pos += len(block)
    return count - 1 if count > 0 else None


def _text_error(
    fail: _TextFailure, kind: str, file: str | None, separator: bytes, tried: str
) -> EncodingError:
    field: str | None = None
    feature: int | None = None
    extra: dict[str, int] = {}
    if kind == "csv":
        feature = fail.line - 2 if fail.line >= 2 else None
        line_start = fail.before.rfind(b"\n") + 1
        column = fail.before[line_start:].count(separator)
        field = f"第 {column + 1} 列"
        extra["column"] = column
    sample = (fail.before[-30:] + fail.after).decode("gb18030", errors="replace")
    return EncodingError(
        f"第 {fail.line} 行的文本无法按 {tried} 解码（“{sample.strip()[:60]}”）",
        key="encoding_undecodable",
        file=file,
        feature=feature,
        field=field,
        hint="请用 --encoding 指定文件编码（如 GBK、BIG5），或另存为 UTF-8",
        data={"byte_offset": fail.offset, "line": fail.line, **extra},
    )
