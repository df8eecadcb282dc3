"""HTML → PDF with WeasyPrint, shared by every report."""

from __future__ import annotations

__all__ = ["html_to_pdf"]


def html_to_pdf(html: str) -> tuple[bytes, int]:
    """Render HTML to PDF with WeasyPrint; return the bytes and the page count."""
    from weasyprint import HTML

    doc = HTML(string=html).render()
    return doc.write_pdf(), len(doc.pages)
