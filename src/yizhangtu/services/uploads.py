"""Checks on uploaded files before anything reads them: size, type and zip bombs.

Nothing is extracted: GDAL reads zip members in place (``/vsizip/``), so a zip is judged by
its central directory (member count, declared sizes, compression ratio, paths) before the
import sees it.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from yizhangtu.errors import (
    FileFormatError,
    InputError,
    PayloadTooLargeError,
    UnsupportedTypeError,
)

__all__ = [
    "ALLOWED_EXTENSIONS",
    "PayloadTooLargeError",
    "UnsupportedTypeError",
    "UploadLimits",
    "check_upload",
]

#: Extensions accepted for upload, with the content signature each must have.
ALLOWED_EXTENSIONS: dict[str, str] = {
    ".zip": "zip",
    ".kmz": "zip",
    ".xlsx": "zip",
    ".gpkg": "sqlite",
    ".geojson": "json",
    ".json": "json",
    ".kml": "xml",
    ".gml": "xml",
    ".csv": "text",
    ".fgb": "fgb",
}
_ARCHIVES = (".zip", ".kmz", ".xlsx", ".gz", ".7z", ".rar", ".tar", ".tgz", ".bz2", ".xz")


@dataclass(frozen=True)
class UploadLimits:
    """Upload limits (from settings)."""

    max_bytes: int
    max_uncompressed_bytes: int
    max_ratio: float
    max_members: int


def _mb(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def _sniff(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"SQLite format 3\x00"):
        return "sqlite"
    if head.startswith(b"fgb"):
        return "fgb"
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"{") or text.startswith(b"["):
        return "json"
    if text.startswith(b"<"):
        return "xml"
    if b"\x00" not in head:
        return "text"
    return "binary"


def check_upload(path: str | Path, filename: str, limits: UploadLimits) -> str:
    """Validate an uploaded file; returns its lower-case extension.

    Raises PayloadTooLargeError (413), UnsupportedTypeError (415), or FileFormatError/InputError
    (400) for a zip that is corrupt, nested, escapes its folder or expands too much.
    """
    p = Path(path)
    name = PurePosixPath(filename.replace("\\", "/")).name
    ext = "".join(PurePosixPath(name).suffixes[-1:]).lower()
    size = p.stat().st_size
    if size > limits.max_bytes:
        raise PayloadTooLargeError(
            f"上传文件过大: {_mb(size)}, 上限 {_mb(limits.max_bytes)}",
            key="upload_too_large",
            file=name,
            hint="拆分文件或联系管理员调整 YIZHANGTU_UPLOAD_MAX_BYTES",
        )
    if size == 0:
        raise FileFormatError("上传的文件是空的", key="empty_upload", file=name)
    if ext not in ALLOWED_EXTENSIONS:
        raise UnsupportedTypeError(
            f"不支持的文件类型: {ext or '(无扩展名)'}",
            key="unsupported_type",
            file=name,
            hint="可上传: " + ", ".join(sorted(ALLOWED_EXTENSIONS)) + " (Shapefile 请打包为 zip)",
        )
    want = ALLOWED_EXTENSIONS[ext]
    got = _sniff(p)
    if got != want and not (want == "text" and got in ("json", "xml")):
        raise UnsupportedTypeError(
            f"文件内容与扩展名 {ext} 不符 (看起来是 {got})",
            key="content_mismatch",
            file=name,
            hint="确认文件未损坏、扩展名正确",
        )
    if want == "zip":
        _check_zip(p, name, limits)
    return ext


def _check_zip(path: Path, name: str, limits: UploadLimits) -> None:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise FileFormatError(
            f"压缩包已损坏: {name}", key="corrupt_zip", file=name, hint="重新打包后上传"
        ) from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise InputError(
                f"压缩包内文件过多: {len(infos)} 个, 上限 {limits.max_members}",
                key="zip_too_many_members",
                file=name,
            )
        total = 0
        for info in infos:
            member = info.filename
            parts = PurePosixPath(member.replace("\\", "/")).parts
            if member.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise InputError(
                    f"压缩包内含不安全的路径: {member}", key="zip_unsafe_path", file=name
                )
            if info.flag_bits & 0x1:
                raise InputError(
                    f"压缩包已加密, 无法读取: {member}",
                    key="zip_encrypted",
                    file=name,
                    hint="去掉密码后重新打包",
                )
            if member.lower().endswith(_ARCHIVES) and path.suffix.lower() == ".zip":
                raise InputError(
                    f"压缩包内不应再含压缩包: {member}",
                    key="zip_nested",
                    file=name,
                    hint="解开内层压缩包后重新打包",
                )
            total += info.file_size
            if total > limits.max_uncompressed_bytes:
                raise InputError(
                    f"压缩包解压后过大 (超过 {_mb(limits.max_uncompressed_bytes)}), 疑似压缩炸弹",
                    key="zip_bomb",
                    file=name,
                    hint=(
                        "确认文件内容; 确需导入请联系管理员调整 "
                        "YIZHANGTU_UPLOAD_MAX_UNCOMPRESSED_BYTES"
                    ),
                )
            if info.file_size > 1024 * 1024 and info.file_size > limits.max_ratio * max(
                info.compress_size, 1
            ):
                raise InputError(
                    f"压缩包成员 {member} 压缩比 "
                    f"{info.file_size / max(info.compress_size, 1):.0f}:1 异常, 疑似压缩炸弹",
                    key="zip_bomb",
                    file=name,
                    hint=f"正常的空间数据压缩比低于 {limits.max_ratio:.0f}:1",
                )
