"""The local cloud's dashboard page: a stage's own CloudWatch dashboard (whatever GetDashboard
returns), drawn with uPlot from the local cloud's metrics and alarm states, served on 127.0.0.1.

widgets.py reads the body, queries.py plans each refresh's CloudWatch calls, service.py makes
them, server.py serves the page, process.py runs it in the background; static/ is the page.
"""
