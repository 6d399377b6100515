"""What a stamp adds up to: the collected runs, summary tables and the challenge submission (no rich here)."""
