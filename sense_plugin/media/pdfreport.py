"""The PDF snapshot report: one page with the frame and what it shows, as searchable text.

The page (A4 landscape) holds the frame, scaled to fit, and a block of four text lines: the
camera name, the frame's archive time, the comment and the export id. The block sits in the
corner ``<render><timestamp><position>`` names (top-left when none is given): above the frame
for a top corner, below it for a bottom one, aligned left or right. The text is real PDF
text (a reader can search and copy it; ``pdftotext`` extracts it), in Helvetica, so
characters outside Latin-1 are shown as '?'. The document is written with ReportLab in its
invariant mode (no creation time, a fixed document id): the same frame and facts always
give the same bytes. Reference: ``docs/custody.rst``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

MARGIN_PT = 36.0
FONT = "Helvetica"
FONT_SIZE_PT = 11.0
LINE_PT = 15.0
LINES = 4


@dataclass(frozen=True)
class ReportFacts:
    """What the report says about the frame."""

    camera: str
    archive_time: str
    comment: str
    export_id: int
    #: One of top-left, top-right, bottom-left, bottom-right.
    position: str = "top-left"


def latin1(text: str) -> str:
    """Text Helvetica can show: other characters become '?'."""
    return text.encode("latin-1", "replace").decode("latin-1")


def text_lines(facts: ReportFacts) -> list[str]:
    return [f"Camera: {latin1(facts.camera)}", f"Archive time: {facts.archive_time}",
            f"Comment: {latin1(facts.comment)}", f"Export: {facts.export_id}"]


def render_report(jpeg: bytes, width_px: int, height_px: int, facts: ReportFacts) -> bytes:
    """The PDF of one frame (``jpeg``, embedded as it is) and its facts."""
    page_w, page_h = landscape(A4)
    text_h = LINES * LINE_PT
    box_w = page_w - 2 * MARGIN_PT
    box_h = page_h - 2 * MARGIN_PT - text_h - LINE_PT
    scale = min(box_w / width_px, box_h / height_px)
    image_w, image_h = width_px * scale, height_px * scale
    top = facts.position.startswith("top")
    right = facts.position.endswith("right")
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=(page_w, page_h), invariant=1)
    pdf.setTitle(f"Snapshot of {latin1(facts.camera)} at {facts.archive_time}")
    pdf.setAuthor("sense_plugin")
    image_y = MARGIN_PT if top else MARGIN_PT + text_h + LINE_PT
    image_x = (page_w - image_w) / 2
    pdf.drawImage(ImageReader(io.BytesIO(jpeg)), image_x, image_y, image_w, image_h)
    pdf.setFont(FONT, FONT_SIZE_PT)
    first_y = page_h - MARGIN_PT - FONT_SIZE_PT if top else MARGIN_PT + text_h - FONT_SIZE_PT
    for number, line in enumerate(text_lines(facts)):
        y = first_y - number * LINE_PT
        if right:
            pdf.drawRightString(page_w - MARGIN_PT, y, line)
        else:
            pdf.drawString(MARGIN_PT, y, line)
    pdf.showPage()
    pdf.save()
    return out.getvalue()
