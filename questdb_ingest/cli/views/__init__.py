"""The terminal views (rich renderables) of the live commands: feeds, sender, hybrid runtime."""
