"""Comparing editing methods: metrics, an independent expression classifier, the HTML report."""
