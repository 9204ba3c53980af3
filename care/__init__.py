"""Proactive care: APScheduler jobs for birthdays, lapsed customers, follow-ups and SLA deadlines."""
