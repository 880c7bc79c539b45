"""From result rows to numbers: metrics, BD-rate, RD curves and their BD-rate tables, text tables."""
