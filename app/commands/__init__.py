"""One thin module per `seglens` sub-command that evaluates; the options they share live in options.py."""
