"""Where the bytes of a source are: plain files, shapefile sidecars, zip members, directories.

:func:`resolve_source` turns the path a user gives into a :class:`Source`: the path GDAL opens
(``/vsizip/...`` for zip members), the reader kind, the sub-layer choices, access to shapefile
sidecars and the source hash. It also checks a shapefile's sidecars and headers before GDAL
sees them, because GDAL reads a truncated ``.shp`` without error (the lost features come back
with empty geometry) and reports a missing ``.shx`` only as an English message.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO, Literal

import numpy as np

from yizhangtu.errors import FileFormatError, InputError

__all__ = [
    "DATA_EXTENSIONS",
    "SHAPEFILE_SIDECARS",
    "Source",
    "check_shapefile",
    "resolve_source",
]

SourceKind = Literal["shapefile", "csv", "gdal"]

#: Extensions of files a container (zip, directory) may hold as data.
DATA_EXTENSIONS: tuple[str, ...] = (
    ".shp",
    ".gpkg",
    ".geojson",
    ".json",
    ".kml",
    ".kmz",
    ".gml",
    ".csv",
    ".xlsx",
    ".ods",
    ".fgb",
    ".tab",
    ".mif",
    ".sqlite",
)
#: Shapefile sidecars included in the source hash.
SHAPEFILE_SIDECARS: tuple[str, ...] = (
    ".shp",
    ".shx",
    ".dbf",
    ".prj",
    ".cpg",
    ".qix",
    ".sbn",
    ".sbx",
    ".fbn",
    ".fbx",
    ".ain",
    ".aih",
    ".atx",
    ".ixs",
    ".mxs",
    ".qmd",
    ".shp.xml",
)
_TEXT_EXTENSIONS = (".csv", ".tsv", ".txt")
_KNOWN_GEO_EXTENSIONS = (*DATA_EXTENSIONS, ".dbf", ".shx", ".gdb", ".zip", ".shz", ".xls", ".tsv")


@dataclass
class Source:
    """A resolved source.

    Attributes
    ----------
    given : str
        The path as the user gave it.
    path : Path
        Local file or directory.
    kind : str
        ``shapefile``, ``csv`` (read by pandas) or ``gdal`` (any other GDAL dataset).
    gdal_path : str
        What GDAL opens (``/vsizip/…/member`` inside a zip).
    ext : str
        Lower-case extension of the data file (``.shp``, ``.geojson`` …).
    member : str or None
        Member path inside a zip, or file name inside a directory container.
    container_choices : tuple of str
        Data files of a container (zip/directory), shown as sub-layer choices.
    source_hash : str
        SHA-256 of the source bytes.
    """

    given: str
    path: Path
    kind: SourceKind
    gdal_path: str
    ext: str
    member: str | None = None
    member_display: str | None = None
    container_choices: tuple[str, ...] = ()
    source_hash: str = ""
    _zip: Path | None = field(default=None, repr=False)
    _zip_names: dict[str, str] = field(default_factory=dict, repr=False)  # lower → real

    # ------------------------------------------------------------------ sidecars
    def _sidecar_name(self, ext: str) -> str | None:
        """Real name of the sidecar with extension ``ext`` (case-insensitive), or None."""
        if self._zip is not None:
            assert self.member is not None
            stem = self.member[: -len(self.ext)] if self.ext else self.member
            return self._zip_names.get((stem + ext).lower())
        stem = self.path.name[: -len(self.ext)] if self.ext else self.path.name
        for cand in (stem + ext, stem + ext.upper(), stem + ext.lower()):
            if (self.path.parent / cand).is_file():
                return cand
        lowered = (stem + ext).lower()
        for p in self.path.parent.iterdir():
            if p.name.lower() == lowered and p.is_file():
                return p.name
        return None

    def has_sidecar(self, ext: str) -> bool:
        """Whether the sidecar exists."""
        return self._sidecar_name(ext) is not None

    def open_sidecar(self, ext: str) -> BinaryIO:
        """Open a sidecar (or the data file itself with ``self.ext``) for binary reading."""
        name = self._sidecar_name(ext)
        if name is None:
            raise FileNotFoundError(ext)
        if self._zip is not None:
            zf = zipfile.ZipFile(self._zip)
            fh = zf.open(name)
            return _ZipMember(zf, fh)  # type: ignore[return-value]
        return (self.path.parent / name).open("rb")

    def sidecar_size(self, ext: str) -> int | None:
        """Size in bytes of a sidecar, or None when absent."""
        name = self._sidecar_name(ext)
        if name is None:
            return None
        if self._zip is not None:
            with zipfile.ZipFile(self._zip) as zf:
                return zf.getinfo(name).file_size
        return (self.path.parent / name).stat().st_size

    def read_sidecar_text(self, ext: str) -> str | None:
        """Content of a small text sidecar (``.cpg``, ``.prj``), None when absent."""
        if not self.has_sidecar(ext):
            return None
        with self.open_sidecar(ext) as fh:
            return fh.read(65536).decode("utf-8", errors="replace")

    def open_data(self) -> BinaryIO:
        """Open the data file itself for binary reading."""
        if self._zip is not None:
            assert self.member is not None
            zf = zipfile.ZipFile(self._zip)
            return _ZipMember(zf, zf.open(self.member))  # type: ignore[return-value]
        return self.path.open("rb")

    @property
    def label(self) -> str:
        """Name of the data file without extension (default layer name)."""
        name = PurePosixPath(self.member).name if self.member else self.path.name
        return name[: -len(self.ext)] if self.ext and name.lower().endswith(self.ext) else name


class _ZipMember(io.RawIOBase):
    """A zip member stream that closes its archive too."""

    def __init__(self, zf: zipfile.ZipFile, fh: IO[bytes]) -> None:
        self._zf, self._fh = zf, fh

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._fh.read(size)

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self._fh.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._fh.close()
            self._zf.close()
        finally:
            super().close()


# --------------------------------------------------------------------------- hashing


def _hash_files(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with p.open("rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def _shapefile_parts(shp: Path) -> list[Path]:
    stem = shp.name[:-4].lower()
    parts = [
        p
        for p in shp.parent.iterdir()
        if p.is_file()
        and p.name.lower().startswith(stem + ".")
        and p.name.lower()[len(stem) :] in SHAPEFILE_SIDECARS
    ]
    return sorted(parts, key=lambda p: p.name)


# --------------------------------------------------------------------------- resolution


def _kind_for(ext: str) -> SourceKind:
    if ext == ".shp":
        return "shapefile"
    if ext in _TEXT_EXTENSIONS:
        return "csv"
    return "gdal"


def _display_zip_name(info: zipfile.ZipInfo) -> str:
    """Member name as a user would read it (GBK names from Chinese Windows decoded)."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("gb18030")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _match_choice(choices: dict[str, str], wanted: str) -> str | None:
    """Find the member for a sub-layer name (full path, file name or stem, case-insensitive)."""
    w = wanted.strip().lower()
    for display, real in choices.items():
        pp = PurePosixPath(display)
        if w in (display.lower(), pp.name.lower(), pp.stem.lower(), real.lower()):
            return display
    return None


def _sublayer_required(file: str, choices: list[str]) -> InputError:
    return InputError(
        f"文件包含多个图层（{len(choices)} 个），请指定要导入的图层：" + "、".join(choices[:20]),
        key="sublayer_required",
        file=file,
        hint=f"用 --sublayer 指定，例如 --sublayer {choices[0]}",
        data={"sublayers": choices},
    )


def resolve_source(path: str | Path, sublayer: str | None = None) -> tuple[Source, str | None]:
    """Resolve a user path to a :class:`Source`.

    Parameters
    ----------
    path : str or Path
        File, ``.zip``, ``.gdb`` directory or directory of data files.
    sublayer : str, optional
        For containers: which data file (path, name or stem); otherwise passed on as the layer.

    Returns
    -------
    (Source, str or None)
        The source and the sub-layer name still to resolve inside it (None once used up).

    Raises
    ------
    InputError
        ``file_not_found``, ``sublayer_required``, ``sublayer_not_found``.
    FileFormatError
        ``file_empty``, ``file_corrupt`` (bad zip), ``unsupported_format`` (nothing readable).
    """
    given = str(path)
    p = Path(path)
    if not p.exists():
        raise InputError(
            f"文件不存在: {given}", key="file_not_found", file=given, hint="请检查路径与文件名"
        )
    if p.is_dir():
        if p.suffix.lower() == ".gdb":
            files = sorted(
                (f for f in p.rglob("*") if f.is_file()), key=lambda f: str(f.relative_to(p))
            )
            return Source(
                given, p, "gdal", str(p), ".gdb", source_hash=_hash_files(files)
            ), sublayer
        members = sorted(
            f.name
            for f in p.iterdir()
            if (f.is_file() and f.suffix.lower() in DATA_EXTENSIONS)
            or (f.is_dir() and f.suffix.lower() == ".gdb")
        )
        if not members:
            raise FileFormatError(
                "目录中没有可识别的空间数据文件",
                key="unsupported_format",
                file=given,
                hint="支持 Shapefile、GeoPackage、GeoJSON、KML、FileGDB、CSV、XLSX",
            )
        chosen = _choose_member(given, {m: m for m in members}, sublayer)
        inner, rest = resolve_source(
            p / chosen, None if _match_choice({chosen: chosen}, sublayer or "") else sublayer
        )
        inner.given = given
        inner.member_display = chosen
        inner.container_choices = tuple(members)
        return inner, rest
    size = p.stat().st_size
    ext = _ext_of(p.name)
    if size == 0:
        raise FileFormatError(
            "文件是空的（0 字节）", key="file_empty", file=given, hint="请重新导出或重新复制该文件"
        )
    if ext in (".zip", ".shz"):
        return _resolve_zip(given, p, sublayer)
    kind = _kind_for(ext)
    if kind == "shapefile":
        parts = _shapefile_parts(p)
        digest = _hash_files(parts if parts else [p])
    else:
        digest = _hash_files([p])
    return Source(given, p, kind, str(p), ext, source_hash=digest), sublayer


def _ext_of(name: str) -> str:
    lower = name.lower()
    if lower.endswith(".shp.zip"):
        return ".zip"
    return PurePosixPath(lower).suffix


def _choose_member(given: str, choices: dict[str, str], sublayer: str | None) -> str:
    names = list(choices)
    if sublayer:
        hit = _match_choice(choices, sublayer)
        if hit is not None:
            return hit
        if len(names) > 1:
            raise InputError(
                f"找不到图层“{sublayer}”",
                key="sublayer_not_found",
                file=given,
                hint="可选图层：" + "、".join(names[:20]),
                data={"sublayers": names},
            )
        return names[0]
    if len(names) > 1:
        raise _sublayer_required(given, [PurePosixPath(n).name for n in names])
    return names[0]


def _resolve_zip(given: str, p: Path, sublayer: str | None) -> tuple[Source, str | None]:
    try:
        with zipfile.ZipFile(p) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise FileFormatError(
            "压缩包已损坏或不是 zip 文件",
            key="file_corrupt",
            file=given,
            hint="请重新压缩或重新下载该文件",
            data={"detail": str(exc)},
        ) from None
    infos = [
        i
        for i in infos
        if not i.filename.startswith("__MACOSX/")
        and not PurePosixPath(i.filename).name.startswith(".")
    ]
    zip_names = {i.filename.lower(): i.filename for i in infos}
    choices: dict[str, str] = {}
    gdbs: dict[str, str] = {}
    for i in infos:
        display = _display_zip_name(i)
        ext = _ext_of(i.filename)
        parts = PurePosixPath(i.filename).parts
        gdb = next((k for k, part in enumerate(parts) if part.lower().endswith(".gdb")), None)
        if gdb is not None:
            real = "/".join(parts[: gdb + 1])
            gdbs[real] = real
            choices.setdefault("/".join(PurePosixPath(display).parts[: gdb + 1]), real)
        elif ext in DATA_EXTENSIONS:
            choices[display] = i.filename
    if not choices:
        # a lone .dbf is an attribute table GDAL can still read
        dbfs = {(_display_zip_name(i)): i.filename for i in infos if _ext_of(i.filename) == ".dbf"}
        choices = dbfs
    if not choices:
        raise FileFormatError(
            "压缩包中没有可识别的空间数据文件",
            key="unsupported_format",
            file=given,
            hint="压缩包内文件：" + "、".join(_display_zip_name(i) for i in infos[:20]),
        )
    display = _choose_member(given, choices, sublayer)
    used = sublayer is not None and _match_choice({display: choices[display]}, sublayer) is not None
    real = choices[display]
    ext = ".gdb" if real in gdbs else _ext_of(real)
    kind = _kind_for(ext)
    src = Source(
        given,
        p,
        kind,
        f"/vsizip/{p.resolve()}/{real}",
        ext,
        member=real,
        member_display=display,
        container_choices=tuple(choices),
        source_hash=_hash_files([p]),
        _zip=p,
        _zip_names=zip_names,
    )
    return src, (None if used else sublayer)


# --------------------------------------------------------------------------- shapefile checks


def check_shapefile(src: Source) -> int:
    """Check a shapefile's sidecars and headers; return its feature count.

    Raises
    ------
    FileFormatError
        ``missing_shx``, ``missing_dbf``, ``file_empty``, ``file_corrupt``, ``file_truncated``.
    """
    file = src.given
    name = src.member or src.path.name
    if not src.has_sidecar(".shx"):
        raise FileFormatError(
            f"缺少 .shx 索引文件（{src.label}.shx），无法读取 Shapefile",
            key="missing_shx",
            file=file,
            hint="请把与 .shp 同名的 .shx、.dbf、.prj、.cpg 文件一起提供；"
            "若 .shx 确已丢失，可在 QGIS 中以 SHAPE_RESTORE_SHX=YES 重建后再导入",
        )
    if not src.has_sidecar(".dbf"):
        raise FileFormatError(
            f"缺少 .dbf 属性表文件（{src.label}.dbf）",
            key="missing_dbf",
            file=file,
            hint="请把与 .shp 同名的 .dbf 文件一起提供",
        )
    shp_size = src.sidecar_size(src.ext) or 0
    shx_size = src.sidecar_size(".shx") or 0
    dbf_size = src.sidecar_size(".dbf") or 0
    for size, part in ((shp_size, ".shp"), (shx_size, ".shx"), (dbf_size, ".dbf")):
        if size == 0:
            raise FileFormatError(
                f"{name} 的 {part} 文件是空的（0 字节）",
                key="file_empty",
                file=file,
                hint="请重新导出 Shapefile",
            )
    with src.open_sidecar(src.ext) as fh:
        head = fh.read(100)
    if len(head) < 100 or struct.unpack(">i", head[:4])[0] != 9994:
        raise FileFormatError(
            ".shp 文件头损坏（不是有效的 Shapefile）",
            key="file_corrupt",
            file=file,
            hint="请重新导出 Shapefile",
        )
    declared = struct.unpack(">i", head[24:28])[0] * 2
    with src.open_sidecar(".shx") as fh:
        shx = fh.read()
    if len(shx) < 100 or struct.unpack(">i", shx[:4])[0] != 9994 or (len(shx) - 100) % 8:
        raise FileFormatError(
            ".shx 索引文件损坏", key="file_corrupt", file=file, hint="请重新导出 Shapefile"
        )
    index = np.frombuffer(shx[100:], dtype=">i4").reshape(-1, 2).astype(np.int64) * 2
    n = len(index)
    ends = index[:, 0] + 8 + index[:, 1] if n else np.zeros(0, dtype=np.int64)
    over = np.flatnonzero(ends > shp_size)
    if declared > shp_size or len(over):
        first = int(over[0]) if len(over) else None
        raise FileFormatError(
            f".shp 文件被截断：文件头声明 {declared} 字节，实际只有 {shp_size} 字节"
            + (f"，从第 {first + 1} 个要素起几何缺失" if first is not None else ""),
            key="file_truncated",
            file=file,
            feature=first,
            hint="文件复制或下载不完整，请重新获取完整的 Shapefile",
            data={
                "declared_bytes": declared,
                "actual_bytes": shp_size,
                "missing_features": len(over),
            },
        )
    with src.open_sidecar(".dbf") as fh:
        dhead = fh.read(12)
    if len(dhead) < 12:
        raise FileFormatError(
            ".dbf 文件头不完整", key="file_corrupt", file=file, hint="请重新导出 Shapefile"
        )
    n_dbf, hlen, rlen = struct.unpack("<IHH", dhead[4:12])
    if hlen + n_dbf * rlen > dbf_size:
        have = max((dbf_size - hlen) // rlen, 0) if rlen else 0
        raise FileFormatError(
            f".dbf 属性表被截断：声明 {n_dbf} 条记录，只有 {have} 条完整",
            key="file_truncated",
            file=file,
            feature=int(have),
            hint="文件复制或下载不完整，请重新获取完整的 Shapefile",
        )
    if n_dbf != n:
        raise FileFormatError(
            f"Shapefile 各部分记录数不一致：.shp/.shx 有 {n} 个要素，.dbf 有 {n_dbf} 条记录",
            key="file_corrupt",
            file=file,
            feature=min(n, n_dbf),
            hint=".shp 与 .dbf 可能来自不同版本的数据，请重新导出",
        )
    return n


def opener(src: Source, ext: str) -> Callable[[], BinaryIO]:
    """Return a callable that opens a sidecar of ``src`` (for repeated scans)."""
    return lambda: src.open_sidecar(ext)
