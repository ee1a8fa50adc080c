"""Paper-ready tables: the papers' numbers beside ours, as Markdown, LaTeX and CSV."""

from vlpipe.report.tables import retrieval_table, write_report

__all__ = ["retrieval_table", "write_report"]
