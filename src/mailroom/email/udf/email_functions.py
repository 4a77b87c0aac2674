"""Loaded by ``load_folder`` (``mailroom run --udf-dir``): declares the email UDFs."""

from mailroom.email.udfs import register

register()
