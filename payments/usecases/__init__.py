"""The actions users take on payments, each written once.

Every adapter (JSON routes, staff pages, the CLI, a one-stop protocol adapter) parses its input,
calls one function here inside its unit of work, commits, hands the result's follow-ups to
:func:`payments.usecases.follow_ups.run_after_commit`, and renders. No business rule lives in
an adapter; nothing above ``payments`` imports ``payments.tasks``.
"""
