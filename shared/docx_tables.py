"""Tables and page set-up of official documents in DOCX (python-docx): Times New Roman, A4 and the decree's margins.

Shared by reporting's report documents (the tables of its docxtpl template, scripts/make_report_templates.py) and
routing's Decree 56/2017 forms (routing/documents.py), so both print the same page and tables.
"""

from __future__ import annotations

from typing import Any

from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt

FONT = "Times New Roman"
BODY_PT = 13
TABLE_PT = 11
# Decree 30/2020, Appendix I: A4; top and bottom 20-25 mm, left 30-35 mm, right 15-20 mm.
MARGINS_MM = {"top": 20, "bottom": 20, "left": 30, "right": 15}
TEXT_WIDTH_MM = 210 - MARGINS_MM["left"] - MARGINS_MM["right"]


def set_font(run_or_style: Any, size: float | None = None, *, bold: bool | None = None, italic: bool | None = None) -> None:
    font = run_or_style.font
    font.name = FONT
    if size is not None:
        font.size = Pt(size)
    if bold is not None:
        font.bold = bold
    if italic is not None:
        font.italic = italic
    # East-Asian and complex-script slots too, or Word falls back to another font for some letters.
    element = run_or_style.element if hasattr(run_or_style, "element") else run_or_style._element
    rpr = element.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.append(fonts)
    for slot in ("w:ascii", "w:hAnsi", "w:cs", "w:eastAsia"):
        fonts.set(qn(slot), FONT)


def page_setup(document: Any) -> None:
    for section in document.sections:
        section.page_width, section.page_height = Mm(210), Mm(297)
        section.top_margin, section.bottom_margin = Mm(MARGINS_MM["top"]), Mm(MARGINS_MM["bottom"])
        section.left_margin, section.right_margin = Mm(MARGINS_MM["left"]), Mm(MARGINS_MM["right"])


def paragraph(container: Any, text: str = "", *, size: float = BODY_PT, bold: bool = False, italic: bool = False,
              align: Any = None, before: float = 0, after: float = 0) -> Any:
    p = container.add_paragraph()
    if text:
        set_font(p.add_run(text), size, bold=bold, italic=italic)
    fmt = p.paragraph_format
    fmt.space_before, fmt.space_after = Pt(before), Pt(after)
    if align is not None:
        p.alignment = align
    return p


def add_table(container: Any, table: Any) -> None:
    """A titled table with a grid, bold headings, numbers right-aligned, widths in proportion."""
    paragraph(container, table.title, size=BODY_PT, bold=True, before=6, after=3)
    grid = container.add_table(rows=1, cols=len(table.headings))
    grid.style = "Table Grid"
    grid.alignment = WD_TABLE_ALIGNMENT.CENTER
    total = sum(table.widths)
    widths = [Mm(TEXT_WIDTH_MM * w / total) for w in table.widths]
    for cell, heading, width in zip(grid.rows[0].cells, table.headings, widths):
        _cell(cell, heading, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER, width=width)
    for i, row in enumerate(table.rows):
        bold = table.total_row and i == len(table.rows) - 1
        for cell, value, width in zip(grid.add_row().cells, row, widths):
            numeric = value.replace(".", "").replace(",", "").isdigit()
            _cell(cell, value, bold=bold, align=WD_ALIGN_PARAGRAPH.RIGHT if numeric else None, width=width)
    # Repeat the heading row on each page.
    trpr = grid.rows[0]._tr.get_or_add_trPr()
    header = OxmlElement("w:tblHeader")
    header.set(qn("w:val"), "true")
    trpr.append(header)


def _cell(cell: Any, text: str, *, bold: bool = False, align: Any = None, width: Any = None) -> None:
    if width is not None:
        cell.width = width
    p = cell.paragraphs[0]
    run = p.add_run(text)
    # The face comes from the document's Normal style (the template's Times New Roman): per-run fonts cost 2/3 of the time.
    run.font.size = Pt(TABLE_PT)
    if bold:
        run.font.bold = True
    p.paragraph_format.space_before = p.paragraph_format.space_after = Pt(1)
    if align is not None:
        p.alignment = align
