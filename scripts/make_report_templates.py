"""Build the report documents' DOCX template (services/reporting/templates/bao-cao.docx) with python-docx.

Run once after changing the layout: `.venv/bin/python scripts/make_report_templates.py`. The output is an ordinary
Word document with docxtpl tags ({{ ... }}, {%p ... %}); a commune's officer may open it in Word or LibreOffice,
change the wording, fonts or recipients, and save it back: the tags are what the service fills in.
Layout per Decree 30/2020/NĐ-CP, Appendix I: A4 portrait, margins top/bottom 20 mm, left 30 mm, right 15 mm,
Times New Roman 13 pt; issuing body and number at the left, the national motto at the right, place and date under it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from docx import Document
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_BREAK
from docx.shared import Mm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.docx_tables import BODY_PT, FONT, page_setup, paragraph, set_font  # noqa: E402

CENTER, JUSTIFY = WD_ALIGN_PARAGRAPH.CENTER, WD_ALIGN_PARAGRAPH.JUSTIFY


def _no_borders(table) -> None:
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    borders = OxmlElement("w:tblBorders")
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        element = OxmlElement(f"w:{edge}")
        element.set(qn("w:val"), "nil")
        borders.append(element)
    table._tbl.tblPr.append(borders)


def _body(document, text: str, **kwargs) -> None:
    p = paragraph(document, text, after=6, align=JUSTIFY, **kwargs)
    p.paragraph_format.first_line_indent = Mm(10)
    p.paragraph_format.line_spacing = 1.15


def build(path: Path) -> None:
    document = Document()
    page_setup(document)
    normal = document.styles["Normal"]
    set_font(normal, BODY_PT)
    # The heading block: two columns without borders.
    head = document.add_table(rows=1, cols=2)
    head.alignment = WD_TABLE_ALIGNMENT.CENTER
    _no_borders(head)
    left, right = head.rows[0].cells
    left.width, right.width = Mm(62), Mm(103)
    for cell in (left, right):
        cell.paragraphs[0]._element.getparent().remove(cell.paragraphs[0]._element)
    paragraph(left, "{{ issuer_upper }}", size=12, align=CENTER)
    paragraph(left, "{{ issuer_lower }}", size=12, bold=True, align=CENTER)
    paragraph(left, "―――――", size=10, align=CENTER)
    paragraph(left, "{{ number }}", size=13, align=CENTER, before=4)
    paragraph(right, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", size=12, bold=True, align=CENTER)
    paragraph(right, "Độc lập - Tự do - Hạnh phúc", size=13, bold=True, align=CENTER)
    paragraph(right, "――――――――――――――", size=10, align=CENTER)
    paragraph(right, "{{ place_date }}", size=13, italic=True, align=CENTER, before=4)

    paragraph(document, "{%p for mark in marks %}", align=CENTER)
    paragraph(document, "{{ mark }}", bold=True, align=CENTER, before=6)
    paragraph(document, "{%p endfor %}", align=CENTER)
    paragraph(document, "{{ title }}", size=14, bold=True, align=CENTER, before=12)
    paragraph(document, "{{ subject }}", size=14, bold=True, align=CENTER, after=12)
    paragraph(document, "{%p for line in basis %}")
    _body(document, "{{ line }}", italic=False)
    paragraph(document, "{%p endfor %}")
    paragraph(document, "{%p for s in sections %}")
    paragraph(document, "{{ s.heading }}", bold=True, before=6, after=6)
    paragraph(document, "{%p for para in s.paragraphs %}")
    _body(document, "{{ para }}")
    paragraph(document, "{%p endfor %}")
    paragraph(document, "{{p s.tables }}")
    paragraph(document, "{%p for sub in s.subheadings %}")
    paragraph(document, "{{ sub.heading }}", bold=True, before=3, after=6)
    paragraph(document, "{%p for para in sub.paragraphs %}")
    _body(document, "{{ para }}")
    paragraph(document, "{%p endfor %}")
    paragraph(document, "{%p endfor %}")
    paragraph(document, "{%p endfor %}")
    paragraph(document, "{{ figures_note }}", size=11, italic=True, before=6)

    # Recipients at the left, the signature at the right.
    sign = document.add_table(rows=1, cols=2)
    _no_borders(sign)
    left, right = sign.rows[0].cells
    left.width, right.width = Mm(80), Mm(85)
    for cell in (left, right):
        cell.paragraphs[0]._element.getparent().remove(cell.paragraphs[0]._element)
    paragraph(left, "Nơi nhận:", size=12, bold=True, italic=True, before=12)
    paragraph(left, "{%p for r in recipients %}", size=11)
    paragraph(left, "{{ r }}", size=11)
    paragraph(left, "{%p endfor %}", size=11)
    paragraph(right, "{{ sign_on_behalf }}", size=13, bold=True, align=CENTER, before=12)
    paragraph(right, "{{ sign_title }}", size=13, bold=True, align=CENTER)
    paragraph(right, "{% if not signed %}(Chưa ký duyệt){% endif %}", size=11, italic=True, align=CENTER, after=48)
    paragraph(right, "{{ signer_name }}", size=13, bold=True, align=CENTER)

    p = paragraph(document, "")
    p.add_run().add_break(WD_BREAK.PAGE)
    paragraph(document, "PHỤ LỤC", size=13, bold=True, align=CENTER)
    paragraph(document, "(Kèm theo {{ title|lower }} {{ subject[0]|lower }}{{ subject[1:] }})", size=12, italic=True, align=CENTER, after=6)
    paragraph(document, "{{p appendix }}")
    core = document.core_properties
    core.title, core.author, core.language = "Báo cáo công tác trẻ em", "baove", "vi-VN"
    document.save(path)
    assert FONT in document.styles["Normal"].font.name


if __name__ == "__main__":
    folder = ROOT / "services" / "reporting" / "templates"
    build(folder / "bao-cao.docx")
    sys.stdout.write("template written to services/reporting/templates/bao-cao.docx\n")
