"""Authentication: Argon2 passwords, signed JWTs and API keys."""
