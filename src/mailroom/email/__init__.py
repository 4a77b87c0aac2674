"""The email-tracking application, built only on mailroom's public API.

For now: a simulator of email events and the demo that streams them through the log.
"""
