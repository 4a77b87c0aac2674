"""The engine's operators, one concern per module."""
