"""End-to-end pipelines: ``dama-det demo`` and ``dama-det compare``."""
