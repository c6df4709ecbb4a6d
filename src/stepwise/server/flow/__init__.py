"""Flow control: the rules that decide whether, and when, a run may start."""
