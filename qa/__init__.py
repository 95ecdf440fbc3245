"""Automated QA: scorecards, rules, answer accuracy, review workflow and the monthly KPI."""
