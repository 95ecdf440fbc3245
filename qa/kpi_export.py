"""KPI exports: 服务考核表 (one month, indicator by indicator) and 结算报表 (months, coefficient, fee,
quarterly sums), as XLSX (the one writer of domain.spreadsheet) and PDF (reportlab, built-in CID font
STSong-Light)."""
from __future__ import annotations

from io import BytesIO
from xml.sax.saxutils import escape

from domain import spreadsheet
from qa.kpi import KpiReport, quarter_of

ASSESS_HEADER = ["序号", "指标", "标准", "权重", "实际值", "扣分", "得分", "计算过程"]
SETTLE_HEADER = ["月份", "考核得分", "等级系数", "月服务费（元）"]


def _assessment_rows(r: KpiReport) -> list[list]:
    rows = [[i.no, i.name, i.standard, i.weight or "-",
             "-" if i.actual is None else f"{i.actual:g}{i.unit}", i.deduction, i.score, i.working]
            for i in r.indicators]
    rows.append(["", "合计", "", 100, "", "", r.total_score,
                 f"基础分 {r.base_score:g} + 奖惩 {r.bonus:+g} = {r.total_score:g}；等级系数 {r.coefficient:g}；"
                 f"月服务费 = 合同总额 {r.settings.get('contract_total_cny', 0):,.2f} / "
                 f"{r.settings.get('contract_months', 36)} × {r.coefficient:g} = {r.fee_cny:,.2f} 元"])
    return rows


def _settlement_rows(reports: list[KpiReport]) -> list[list]:
    rows, by_month = [], {r.month: r for r in reports}
    done: set[str] = set()
    for r in sorted(reports, key=lambda r: r.month):
        rows.append([r.month, r.total_score, r.coefficient, r.fee_cny])
        quarter = quarter_of(r.month)
        if r.month == quarter[-1] and quarter[0] not in done and all(m in by_month for m in quarter):
            done.add(quarter[0])
            rows.append([f"{quarter[0]}～{quarter[-1]} 季度合计", "", "",
                         round(sum(by_month[m].fee_cny for m in quarter), 2)])
    rows.append(["合计", "", "", round(sum(r.fee_cny for r in reports), 2)])
    return rows


def to_xlsx(reports: list[KpiReport], tenant_name: str = "") -> bytes:
    if not reports:
        raise ValueError("没有可导出的考核结果")
    sheets = [spreadsheet.Sheet(f"服务考核表{r.month}", ASSESS_HEADER, _assessment_rows(r),
                                f"{tenant_name} 12345热线服务考核表（{r.month}）", widths=[6, 20, 10, 8, 12, 8, 8, 90],
                                wrap=(7,)) for r in sorted(reports, key=lambda r: r.month)]
    sheets.append(spreadsheet.Sheet("结算报表", SETTLE_HEADER, _settlement_rows(reports),
                                    f"{tenant_name} 12345热线服务费结算报表", widths=[24, 12, 12, 18]))
    return spreadsheet.to_xlsx(sheets)


def to_pdf(reports: list[KpiReport], tenant_name: str = "") -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    if not reports:
        raise ValueError("没有可导出的考核结果")
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    title = ParagraphStyle("t", fontName="STSong-Light", fontSize=15, leading=20)
    cell = ParagraphStyle("c", fontName="STSong-Light", fontSize=8, leading=11)
    style = TableStyle([("FONTNAME", (0, 0), (-1, -1), "STSong-Light"), ("FONTSIZE", (0, 0), (-1, -1), 8),
                        ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef7")),
                        ("VALIGN", (0, 0), (-1, -1), "TOP")])
    story = []
    for r in sorted(reports, key=lambda r: r.month):
        story.append(Paragraph(escape(f"{tenant_name} 12345热线服务考核表（{r.month}）"), title))
        story.append(Spacer(1, 6))
        rows = [ASSESS_HEADER] + [[*(str(v) for v in row[:7]), Paragraph(escape(str(row[7])), cell)]
                                  for row in _assessment_rows(r)]
        story.append(Table(rows, colWidths=[26, 80, 44, 30, 50, 30, 30, 470], style=style, repeatRows=1))
        story.append(PageBreak())
    story.append(Paragraph(escape(f"{tenant_name} 12345热线服务费结算报表"), title))
    story.append(Spacer(1, 6))
    story.append(Table([SETTLE_HEADER] + [[str(v) for v in row] for row in _settlement_rows(reports)],
                       colWidths=[160, 70, 70, 110], style=style))
    out = BytesIO()
    SimpleDocTemplate(out, pagesize=landscape(A4), title="服务考核表与结算报表", leftMargin=28, rightMargin=28,
                      topMargin=28, bottomMargin=28).build(story)
    return out.getvalue()
