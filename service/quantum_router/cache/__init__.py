"""Response caches behind one interface; the factory picks the backend from settings."""
