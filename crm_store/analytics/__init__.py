"""Analytics over the store: customer value and risk, the semantic layer of manager questions, and
service metrics (issue 18). Pure functions of a session and a day; docs/analytics.md has the formulas.
"""
