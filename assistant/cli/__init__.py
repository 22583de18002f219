"""Command line: one module per command; main builds the parser and is the edge where errors become messages."""
