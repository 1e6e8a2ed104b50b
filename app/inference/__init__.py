"""Model backends behind one interface and a registry."""
