"""Run reports: markdown and HTML, from one table renderer."""
