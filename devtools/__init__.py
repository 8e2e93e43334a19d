"""Development-only tools: a real PostgreSQL from a PyPI wheel (for `make dev`,
the tests and the benchmark) and the reloading dev server. Never in the image:
.dockerignore lets only `app/` and the migrations in."""
