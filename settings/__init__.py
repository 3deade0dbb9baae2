"""Configuration, database plumbing, the Celery app and logging shared by every package.

Nothing here knows about fees or receipts; every other package may import it.
"""
