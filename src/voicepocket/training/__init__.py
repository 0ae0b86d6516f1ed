"""A user's own voice, from recordings to a trained, registered voice."""
