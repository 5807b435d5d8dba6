"""The transparency report's files: ``transparency.html`` (a Jinja2 template, self-contained: the
charts embedded as data URIs), ``transparency.pdf`` (fpdf2), the chart PNGs and ``summary.json``,
all from one summary (:func:`csadetect.compliance.transparency.collect`). See ``docs/transparency.md``.
"""
from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Mapping, Sequence

from csadetect.compliance.transparency.charts import CHARTS, write_charts
from csadetect.compliance.transparency.sources import say
from csadetect.compliance.transparency.tables import NEVER_CONTAINS, period_text, tables

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
HTML_TEMPLATE = "transparency.html.j2"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


# ------------------------------------------------------------------------------------------ HTML


def render_html(summary: Mapping, charts: Mapping[str, Path]) -> str:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    titles = dict(CHARTS)
    return env.get_template(HTML_TEMPLATE).render(
        summary=summary, period=period_text(summary), tables=tables(summary),
        charts=[{"name": n, "title": titles[n], "src": _data_uri(p)} for n, p in charts.items()],
        never_contains=NEVER_CONTAINS)


# ------------------------------------------------------------------------------------------- PDF


def _pdf_fonts(pdf) -> str:
    import matplotlib

    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    regular, bold = ttf / "DejaVuSans.ttf", ttf / "DejaVuSans-Bold.ttf"
    if regular.is_file() and bold.is_file():
        pdf.add_font("DejaVu", "", str(regular))
        pdf.add_font("DejaVu", "B", str(bold))
        return "DejaVu"
    return "Helvetica"  # latin-1 only; _pdf_text() replaces anything else


def _pdf_text(text: str, family: str) -> str:
    return text if family == "DejaVu" else text.encode("latin-1", "replace").decode("latin-1")


def _ensure_space(pdf, height: float) -> None:
    if pdf.get_y() + height > pdf.h - pdf.b_margin:
        pdf.add_page()


_WIDE_COLUMNS = {"detector": 2.2, "store": 2.2, "measure": 4.0, "grounds": 3.0, "version": 1.1, "95% interval": 1.6,
                 "manifestly unfounded": 1.2}


def _col_widths(header: Sequence[str]) -> tuple[float, ...]:
    return tuple(_WIDE_COLUMNS.get(name, 1.0) for name in header)


def _pdf_table(pdf, table: Mapping, family: str) -> None:
    _ensure_space(pdf, 30 + 6 * min(len(table["rows"]), 3))  # never a heading alone at a page's foot
    pdf.set_font(family, "B", 12)
    pdf.multi_cell(0, 7, _pdf_text(table["title"], family), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, "", 8)
    pdf.set_text_color(90, 90, 90)
    pdf.multi_cell(0, 5, _pdf_text(f"Source: {table['source']}", family), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    if table["note"] or not table["rows"]:
        pdf.set_font(family, "", 10)
        pdf.multi_cell(0, 6, _pdf_text(table["note"] or "no data", family), new_x="LMARGIN", new_y="NEXT")
    if table["rows"]:
        pdf.set_font(family, "", 8 if len(table["header"]) > 5 else 9)
        with pdf.table(headings_style=_heading_style(family), line_height=5.5, col_widths=_col_widths(table["header"]),
                       text_align="LEFT", first_row_as_headings=True) as t:
            for row in [table["header"], *table["rows"]]:
                cells = t.row()
                for cell in row:
                    cells.cell(_pdf_text(str(cell), family))
    pdf.ln(4)


def _heading_style(family: str):
    from fpdf.fonts import FontFace

    return FontFace(family=family, emphasis="BOLD", fill_color=(225, 225, 225))  # grey: colour is for charts


def render_pdf(summary: Mapping, charts: Mapping[str, Path], path: Path) -> Path:
    from fpdf import FPDF

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # font subsetting chatter

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.set_title("csadetect transparency report")
    pdf.set_creator("csadetect transparency")
    family = _pdf_fonts(pdf)
    pdf.add_page()
    pdf.set_font(family, "B", 18)
    pdf.cell(0, 10, "Transparency report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, "", 10)
    for line in (f"Period: {period_text(summary)}", f"Generated at: {summary['generated_at']}", NEVER_CONTAINS):
        pdf.multi_cell(0, 5.5, _pdf_text(line, family), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    for table in tables(summary):
        _pdf_table(pdf, table, family)
    pdf.add_page()
    pdf.set_font(family, "B", 14)
    pdf.cell(0, 9, "Charts", new_x="LMARGIN", new_y="NEXT")
    width = min(pdf.epw, 165.0)
    for name, png in charts.items():
        _ensure_space(pdf, width * 3.4 / 7.0)
        pdf.image(str(png), x=pdf.l_margin + (pdf.epw - width) / 2, w=width)
        pdf.ln(2)
    pdf.output(str(path))
    return path


# ---------------------------------------------------------------------------------------- render


def render(summary: Mapping, out_dir, quiet: bool = True) -> dict:
    """Write the charts, ``transparency.html``, ``transparency.pdf`` and ``summary.json`` under
    ``out_dir``; returns their paths as strings: ``html``, ``pdf``, ``json`` and ``charts`` (by name)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say("drawing charts", quiet)
    charts = write_charts(summary, out)
    say("writing HTML", quiet)
    html_path = out / "transparency.html"
    html_path.write_text(render_html(summary, charts), encoding="utf-8")
    say("writing PDF", quiet)
    pdf_path = render_pdf(summary, charts, out / "transparency.pdf")
    json_path = out / "summary.json"
    json_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return {"html": str(html_path), "pdf": str(pdf_path), "json": str(json_path),
            "charts": {name: str(p) for name, p in charts.items()}}
