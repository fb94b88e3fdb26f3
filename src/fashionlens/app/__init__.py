"""Web app and HTTP API over search indexes and categorizers (`fashionlens serve`)."""
