"""Persistence: the SQL schema (migrations) and the code that reads and writes it."""
