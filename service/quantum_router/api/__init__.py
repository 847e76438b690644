"""The HTTP API: schemas, dependencies, middleware and one router per resource."""
