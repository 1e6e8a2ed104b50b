"""Qt widgets: layout and display only."""
