"""nextham."""
