"""Paper-ready tables: the papers' numbers beside ours, as Markdown, LaTeX and CSV."""

from vlpipe.report.tables import result_table, write_report

__all__ = ["result_table", "write_report"]
