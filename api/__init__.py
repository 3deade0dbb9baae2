"""The FastAPI app, its routes and the ``motcua`` command line; the only package that knows HTTP."""
